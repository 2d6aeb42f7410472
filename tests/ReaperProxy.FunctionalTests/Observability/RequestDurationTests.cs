using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Relay;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Observability;

/// <summary>
/// DESIGN.md pitfall 6: every WebSocket's whole lifetime would land in http.server.request.duration
/// and swamp the HTTP latency histogram. Plain requests are recorded; WebSockets are not, on managed
/// and Off routes alike.
/// </summary>
public sealed class RequestDurationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("Enforce")]
    [InlineData("Off")]
    public async Task WebSockets_stay_out_of_http_server_request_duration_while_plain_requests_are_recorded(string mode)
    {
        await using var fixture = await RelayFixture.StartAsync(output, Relay.Heartbeat.Fast, mode: mode);
        var factory = fixture.Proxy.Host.Proxy.Services.GetRequiredService<IMeterFactory>();
        using var durations = new MetricCollector<double>(factory, "Microsoft.AspNetCore.Hosting", "http.server.request.duration");

        using (var http = TestClients.Http1(fixture.Proxy.PublicUri))
        {
            Assert.StartsWith("hello", await http.GetStringAsync("hello"));
        }

        await using (var ws = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo")))
        {
            Assert.Equal("x", await ws.EchoAsync("x"));
            await ws.CloseAsync();
        }

        // Another plain request after the WebSocket ended: by then the WebSocket's would be recorded too.
        using (var http = TestClients.Http1(fixture.Proxy.PublicUri))
        {
            Assert.StartsWith("hello", await http.GetStringAsync("hello"));
        }

        await Eventually.UntilAsync(() => durations.GetMeasurementSnapshot().Count >= 2, "both plain requests to be recorded");
        var recorded = durations.GetMeasurementSnapshot();
        Assert.Equal(2, recorded.Count);
        Assert.All(recorded, m => Assert.Equal(200, Convert.ToInt32(m.Tags["http.response.status_code"])));
    }
}
