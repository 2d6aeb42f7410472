using System.Diagnostics;
using System.Net.WebSockets;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>Every closing handshake ends within CloseTimeout, whoever fails to answer.</summary>
public sealed class ClosingHandshakeTests(ITestOutputHelper output)
{
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(800));

    [Fact]
    public async Task Client_close_unanswered_by_the_backend_frees_the_client_within_CloseTimeout()
    {
        // Only the client is pinged, so the silent backend is not reaped: only the handshake bound acts.
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, legs: "Client");
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/silent"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        var closing = Stopwatch.StartNew();
        await client.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", new CancellationTokenSource(s_heartbeat.CloseTimeout + Heartbeat.Slack).Token);
        Assert.InRange(closing.Elapsed, s_heartbeat.CloseTimeout - TimeSpan.FromMilliseconds(50), s_heartbeat.CloseTimeout + Heartbeat.Slack);

        // The proxy answered with the client's own code, and ended the backend leg too.
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.Socket.CloseStatus);
        var backend = await fixture.Probe.Outcome.WaitAsync(Heartbeat.Slack);
        Assert.True(backend.Aborted);
    }

    [Fact]
    public async Task Backend_close_unanswered_by_a_raw_client_frees_both_legs_within_CloseTimeout()
    {
        // Only the backend is pinged, so the silent raw client is not reaped: only the handshake bound acts.
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, legs: "Backend");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/close-first"));
        var close = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(RawFrame.Close, close!.Opcode);
        Assert.Equal(1000, close.CloseCode);

        // The backend's CloseAsync returns: the proxy answered it when the client did not, after
        // CloseTimeout (timed by the backend itself, so a slow test thread cannot skew it).
        var completed = await fixture.Probe.CloseCompleted.WaitAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack);
        Assert.InRange(completed - fixture.Probe.CloseStarted, s_heartbeat.CloseTimeout - TimeSpan.FromMilliseconds(50), s_heartbeat.CloseTimeout + Heartbeat.Slack);

        // And the silent client's connection is ended (bounded poll for end-of-stream, as the second seed does).
        Assert.True(await client.WaitForEndOfStreamAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack), "the raw client must see its connection end");
        Assert.Single(fixture.Logs.WithEventId(2005));
    }

    [Fact]
    public async Task A_completed_handshake_is_relayed_untouched()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        Assert.Equal("x", await client.EchoAsync("x"));
        await client.Socket.CloseAsync((WebSocketCloseStatus)4001, "app reason", new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);

        var outcome = await fixture.Probe.Outcome.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal((WebSocketCloseStatus)4001, outcome.CloseStatus);
        Assert.Equal("app reason", outcome.CloseDescription);
        Assert.Equal((WebSocketCloseStatus)4001, client.Socket.CloseStatus);
        Assert.Empty(fixture.Logs.WithEventId(2005));
    }

    [Fact]
    public async Task Idle_timeout_closes_both_legs_with_1001_idle_despite_answered_pings()
    {
        var idle = TimeSpan.FromMilliseconds(1200);
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat,
            configure: c => c.Set("Reaper:Heartbeat:IdleTimeout", Heartbeat.Format(idle)));
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        Assert.Equal("x", await client.EchoAsync("x"));
        var sinceData = Stopwatch.StartNew();

        // The client answers pings (a receive is pending) but sends no data: pings are not data.
        var (status, description) = await client.Socket.ReceiveCloseAsync(idle + Heartbeat.Slack + TimeSpan.FromSeconds(1));
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("idle", description);
        Assert.InRange(sinceData.Elapsed, idle - TimeSpan.FromMilliseconds(100), idle + Heartbeat.Slack);

        var backend = await fixture.Probe.Outcome.WaitAsync(Heartbeat.Slack);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, backend.CloseStatus);
        Assert.Equal("idle", backend.CloseDescription);
    }

    [Fact]
    public async Task A_client_that_vanishes_without_close_ends_the_backend_connection_at_once()
    {
        await using var fixture = await RelayFixture.StartAsync(output, new Heartbeat(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1)));
        var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        // TCP FIN with no closing handshake. Kestrel reports the disconnect, and YARP tears the backend
        // connection down at the same moment, so the proxy's Close 1001 "client went away" can only race
        // it (best effort): what is guaranteed is that the backend is not left waiting.
        await client.DisposeAsync();
        var outcome = await fixture.Probe.Outcome.WaitAsync(TimeSpan.FromSeconds(2));
        if (!outcome.Aborted)
        {
            Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
            Assert.Equal("client went away", outcome.CloseDescription);
        }
    }

    [Fact]
    public async Task A_backend_that_vanishes_without_close_gets_the_client_a_close_1001()
    {
        await using var fixture = await RelayFixture.StartAsync(output, new Heartbeat(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1)));
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/vanish"));
        await client.SendTextAsync("last words");

        var (status, description) = await client.Socket.ReceiveCloseAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("backend went away", description);
    }

    [Fact]
    public async Task Shutdown_closes_both_legs_with_1001_and_drains_within_CloseTimeout()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        Assert.Equal("x", await client.EchoAsync("x"));

        var receiving = client.Socket.ReceiveCloseAsync(TimeSpan.FromSeconds(10));
        var stopping = Stopwatch.StartNew();
        var stop = fixture.Proxy.Host.StopAsync();
        var (status, description) = await receiving;
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("proxy shutting down", description);
        await client.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "ok", CancellationToken.None);

        var backend = await fixture.Probe.Outcome.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, backend.CloseStatus);
        Assert.Equal("proxy shutting down", backend.CloseDescription);
        await stop.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.InRange(stopping.Elapsed, TimeSpan.Zero, s_heartbeat.CloseTimeout + Heartbeat.Slack);
    }

    [Fact]
    public async Task Readyz_answers_503_while_shutdown_drains_connections()
    {
        await using var fixture = await RelayFixture.StartAsync(output, new Heartbeat(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(2)));
        using var admin = new HttpClient { BaseAddress = fixture.Proxy.AdminUri };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await admin.GetAsync("readyz")).StatusCode);

        // A raw client that will not answer the shutdown Close keeps the drain going for CloseTimeout.
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        var stop = fixture.Proxy.Host.Proxy.StopAsync();
        var close = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1001, close!.CloseCode);

        using var during = await admin.GetAsync("readyz");
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, during.StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await admin.GetAsync("healthz")).StatusCode);
        await stop.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(await client.WaitForEndOfStreamAsync(TimeSpan.FromSeconds(5)));
    }
}
