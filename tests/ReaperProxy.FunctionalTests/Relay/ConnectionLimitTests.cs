using System.Net;
using System.Net.WebSockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// Reaper:MaxConnections: WebSockets beyond the cap (Off routes count too) get a 503 before any
/// backend sees them, with a metric and a rate-limited log line; live ones are untouched; a freed
/// slot or a raised cap (live reload) admits the next.
/// </summary>
public sealed class ConnectionLimitTests(ITestOutputHelper output)
{
    private const int RefusedEventId = 2013;

    [Fact]
    public async Task WebSockets_beyond_MaxConnections_get_503_over_both_protocols_and_live_ones_keep_working()
    {
        await using var fixture = await RelayFixture.StartAsync(output, Heartbeat.Fast, h2cClient: true, configure: config => config
            .Set("Reaper:MaxConnections", 2)
            .Policy("plain", ("Mode", "Off"))
            .Route("off", "/echo", "backend", policy: "plain"));
        using var refused = new MetricCollector<long>(
            fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), "ReaperProxy", "reaper.connections.refused");

        // One heartbeat-managed WebSocket and one on an Off route fill the two slots.
        await using var managed = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        await using var plain = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        Assert.Equal("a", await managed.EchoAsync("a"));
        Assert.Equal("b", await plain.EchoAsync("b"));
        var backendRequests = fixture.Backend.Requests.Count;

        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/record"), HttpVersion.Version11);
        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/echo"), HttpVersion.Version11);
        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/record", h2c: true), HttpVersion.Version20);

        // Refused before YARP contacted the backend.
        Assert.Equal(backendRequests, fixture.Backend.Requests.Count);
        var measurements = refused.GetMeasurementSnapshot();
        Assert.Equal(3, measurements.Count);
        Assert.All(measurements, m => Assert.Equal("limit", m.Tags["reason"]));
        Assert.Equal(["all", "all", "off"], measurements.Select(m => (string)m.Tags["route"]!).Order());
        Assert.All(measurements, m => Assert.Equal("backend", m.Tags["cluster"]));

        // One log line for the burst (at most one every 10 s), naming the cap.
        var line = Assert.Single(fixture.Logs.WithEventId(RefusedEventId));
        Assert.Contains("Reaper:MaxConnections is 2", line.Message);
        Assert.Contains("2 are open", line.Message);

        // The live connections never noticed.
        Assert.Equal("c", await managed.EchoAsync("c"));
        Assert.Equal("d", await plain.EchoAsync("d"));

        // A closed connection frees its slot.
        await plain.CloseAsync();
        TestWebSocket? next = null;
        await Eventually.UntilAsync(async () => (next = await TryConnectAsync(fixture.Ws("/echo"))) is not null, "the freed slot to admit a WebSocket");
        await using (next)
        {
            Assert.Equal("e", await next!.EchoAsync("e"));
        }
    }

    [Fact]
    public async Task A_live_reload_raises_the_cap_for_the_next_connection()
    {
        await using var fixture = await RelayFixture.StartAsync(output, Heartbeat.Fast, configure: config => config.Set("Reaper:MaxConnections", 1));
        await using var first = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/echo"), HttpVersion.Version11);

        Assert.Equal(ReloadOutcome.Applied, await fixture.Proxy.ReloadAsync(fixture.Config.Clone().Set("Reaper:MaxConnections", 2)));
        await using var second = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        Assert.Equal("x", await second.EchoAsync("x"));
        Assert.Equal("y", await first.EchoAsync("y"));
    }

    private static async Task<TestWebSocket?> TryConnectAsync(Uri uri)
    {
        try
        {
            return await TestWebSocket.ConnectHttp1Async(uri);
        }
        catch (WebSocketException)
        {
            return null;
        }
    }
}
