using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Options;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Relay;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Limits;

/// <summary>
/// Reaper:Limits and a route's ReaperMaxConnections against a real proxy: upgrades still waiting for their
/// backend are capped, one route's WebSockets are capped apart from the rest, each refusal is a 503 before
/// any backend is contacted with a metric and a rate-limited log line, and Kestrel's header limits are the
/// documented ones.
/// </summary>
public sealed class AdmissionLimitTests(ITestOutputHelper output)
{
    private const int RouteRefusedEventId = 2020;
    private const int UpgradesRefusedEventId = 2019;

    [Fact]
    public async Task Upgrades_waiting_for_their_backend_beyond_MaxUpgradesInProgress_get_503_and_established_WebSockets_do_not_count()
    {
        await using var fixture = await RelayFixture.StartAsync(output, Heartbeat.Fast, configure: config => config
            .Set("Reaper:Limits:MaxUpgradesInProgress", 2));
        var meters = fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var refused = new MetricCollector<long>(meters, "ReaperProxy", "reaper.connections.refused");
        using var inProgress = new MetricCollector<long>(meters, "ReaperProxy", "reaper.upgrades.in_progress");

        // Upgraded WebSockets hold no upgrade slot: three of them under a cap of two.
        await using var a = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        await using var b = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        await using var c = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));

        // Two upgrades the backend never answers fill the cap.
        using var stopHanging = new CancellationTokenSource();
        var hanging = Enumerable.Range(0, 2).Select(_ => ConnectAndFailAsync(fixture.Ws("/hang"), stopHanging.Token)).ToList();
        await Eventually.UntilAsync(() => fixture.Backend.RequestsFor("/hang").Count == 2, "both upgrades to reach the hanging backend");
        inProgress.RecordObservableInstruments();
        Assert.Equal(2, inProgress.LastMeasurement?.Value);

        var echoRequests = fixture.Backend.RequestsFor("/echo").Count;
        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/echo"), HttpVersion.Version11);
        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/echo"), HttpVersion.Version11);
        Assert.Equal(echoRequests, fixture.Backend.RequestsFor("/echo").Count);
        Assert.All(refused.GetMeasurementSnapshot(), m => Assert.Equal("upgrade_limit", m.Tags["reason"]));
        Assert.Equal(2, refused.GetMeasurementSnapshot().Count);
        var line = Assert.Single(fixture.Logs.WithEventId(UpgradesRefusedEventId));
        Assert.Contains("Reaper:Limits:MaxUpgradesInProgress (2)", line.Message);

        // The live ones never noticed; once the hanging upgrades end, their slots are free again.
        Assert.Equal("x", await a.EchoAsync("x"));
        await stopHanging.CancelAsync();
        await Task.WhenAll(hanging).WaitAsync(Eventually.DefaultTimeout);
        await Eventually.UntilAsync(() =>
        {
            inProgress.RecordObservableInstruments();
            return inProgress.LastMeasurement?.Value == 0;
        }, "the cancelled upgrades to give their slots back");
        await using var d = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        Assert.Equal("y", await d.EchoAsync("y"));
    }

    [Fact]
    public async Task A_route_s_ReaperMaxConnections_refuses_its_own_excess_only_and_reloads_live()
    {
        const string CapKey = "ReverseProxy:Routes:capped:Metadata:ReaperMaxConnections";
        await using var fixture = await RelayFixture.StartAsync(output, Heartbeat.Fast, configure: config => config
            .Policy("plain", ("Mode", "Off"))
            .Route("capped", "/echo", "backend", policy: "plain")
            .Set(CapKey, "1"));
        using var refused = new MetricCollector<long>(
            fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), "ReaperProxy", "reaper.connections.refused");

        // An Off route (plain pass-through) counts like any other.
        await using var first = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        var echoRequests = fixture.Backend.RequestsFor("/echo").Count;
        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/echo"), HttpVersion.Version11);
        Assert.Equal(echoRequests, fixture.Backend.RequestsFor("/echo").Count);

        // Other routes are not held back by it.
        await using var other = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        Assert.Equal("o", await other.EchoAsync("o"));

        var m = Assert.Single(refused.GetMeasurementSnapshot());
        Assert.Equal("route_limit", m.Tags["reason"]);
        Assert.Equal("capped", m.Tags["route"]);
        var line = Assert.Single(fixture.Logs.WithEventId(RouteRefusedEventId));
        Assert.Contains("on route capped", line.Message);
        Assert.Contains("1 are open and the route's ReaperMaxConnections is 1", line.Message);

        // Raised live: the next one is admitted; the first never noticed.
        Assert.Equal(ReloadOutcome.Applied, await fixture.Proxy.ReloadAsync(fixture.Config.Clone().Set(CapKey, "2")));
        await using var second = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        Assert.Equal("s", await second.EchoAsync("s"));
        Assert.Equal("f", await first.EchoAsync("f"));

        // Lowered live below what is open: nothing is cut, the next is refused.
        Assert.Equal(ReloadOutcome.Applied, await fixture.Proxy.ReloadAsync(fixture.Config.Clone().Set(CapKey, "1")));
        await TestWebSocket.AssertRefusedWith503Async(fixture.Ws("/echo"), HttpVersion.Version11);
        Assert.Equal("t", await second.EchoAsync("t"));
    }

    [Fact]
    public async Task Kestrel_gets_the_documented_header_limits_on_both_listeners_and_enforces_them()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using (var defaults = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output }))
        {
            foreach (var app in new[] { defaults.Host.Proxy, defaults.Host.Admin })
            {
                var limits = app.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
                Assert.Equal(TimeSpan.FromSeconds(10), limits.RequestHeadersTimeout);
                Assert.Equal(TimeSpan.FromSeconds(75), limits.KeepAliveTimeout);
                Assert.Equal(32768, limits.MaxRequestHeadersTotalSize);
                Assert.Equal(100, limits.MaxRequestHeaderCount);
            }
        }

        var config = ProxyConfig.CatchAll(backend.BaseUri)
            .Set("Reaper:Limits:MaxRequestHeaderCount", 20)
            .Set("Reaper:Limits:MaxRequestHeadersTotalSize", 4096);
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        var before = backend.Requests.Count;

        Assert.StartsWith("HTTP/1.1 431 ", await RawRequestAsync(proxy.PublicUri, Enumerable.Range(0, 25).Select(i => $"X-H{i}: v")));
        Assert.StartsWith("HTTP/1.1 431 ", await RawRequestAsync(proxy.PublicUri, [$"X-Big: {new string('a', 5000)}"]));
        Assert.StartsWith("HTTP/1.1 404 ", await RawRequestAsync(proxy.PublicUri, Enumerable.Range(0, 10).Select(i => $"X-H{i}: v")));
        Assert.Equal(before + 1, backend.Requests.Count);
    }

    // One GET with these extra headers on a raw socket; returns the status line of the answer.
    private static async Task<string> RawRequestAsync(Uri baseUri, IEnumerable<string> headers)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(baseUri.Host, baseUri.Port, Eventually.Within());
        var request = $"GET /nothing-here HTTP/1.1\r\nHost: {baseUri.Authority}\r\n{string.Concat(headers.Select(h => h + "\r\n"))}Connection: close\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, Eventually.Within());
        var buffer = new byte[4096];
        var read = await socket.ReceiveAsync(buffer, SocketFlags.None, Eventually.Within());
        var text = Encoding.ASCII.GetString(buffer, 0, read);
        return text[..Math.Max(0, text.IndexOf('\r', StringComparison.Ordinal))];
    }

    // A WebSocket connect that is expected to end without an upgrade (cancelled, or refused).
    private static async Task ConnectAndFailAsync(Uri uri, CancellationToken cancel)
    {
        using var socket = new ClientWebSocket();
        using var invoker = new HttpMessageInvoker(TestClients.Handler());
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        bound.CancelAfter(TimeSpan.FromSeconds(60));
        await Assert.ThrowsAnyAsync<Exception>(() => socket.ConnectAsync(uri, invoker, bound.Token));
    }
}
