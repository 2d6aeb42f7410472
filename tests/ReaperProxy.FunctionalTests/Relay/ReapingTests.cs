using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>Live connections live; dead legs are reaped within PingInterval + PongTimeout + 25%.</summary>
public sealed class ReapingTests(ITestOutputHelper output)
{
    private static readonly Heartbeat s_fast = Heartbeat.Fast;

    [Theory]
    [InlineData(false, BackendProtocol.Http1)]
    [InlineData(true, BackendProtocol.Http1)]
    [InlineData(false, BackendProtocol.H2c)]
    public async Task Live_idle_client_survives_many_heartbeats_and_a_shorter_activity_timeout(bool h2cClient, BackendProtocol backend)
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast, backendProtocol: backend, h2cClient: h2cClient,
            configure: c => c.Set("ReverseProxy:Clusters:backend:HttpRequest:ActivityTimeout", "00:00:00.5"));
        await using var client = h2cClient
            ? await TestWebSocket.ConnectHttp2Async(fixture.Ws("/record", h2c: true))
            : await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        Assert.Equal("before", await client.EchoAsync("before"));

        // Idle (no data either way) for well over 3 x (PingInterval + PongTimeout) and the 0.5 s ActivityTimeout.
        // A receive stays pending so the client answers the proxy's pings, as a live client does.
        var idle = 3 * (s_fast.PingInterval + s_fast.PongTimeout) + TimeSpan.FromMilliseconds(500);
        var buffer = new byte[1024];
        var pending = client.Socket.ReceiveAsync(buffer, CancellationToken.None);
        var finished = await Task.WhenAny(pending, Task.Delay(idle));
        Assert.NotSame(pending, finished);

        await client.SendTextAsync("after");
        var result = await pending.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(WebSocketMessageType.Text, result.MessageType);
        Assert.Equal("after", Encoding.UTF8.GetString(buffer, 0, result.Count));
        Assert.False(fixture.Probe.Outcome.IsCompleted, "the backend's WebSocket must still be open");
        Assert.Empty(fixture.Logs.WithEventId(2001));
    }

    [Theory]
    [InlineData(BackendProtocol.Http1)]
    [InlineData(BackendProtocol.H2c)]
    public async Task Silent_raw_client_is_reaped_within_the_deadline_and_the_backend_sees_close_1001(BackendProtocol backend)
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast, backendProtocol: backend);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        var sinceLastByte = Stopwatch.StartNew();
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        var outcome = await fixture.Probe.Outcome.WaitAsync(s_fast.Deadline + Heartbeat.Slack);
        var elapsed = sinceLastByte.Elapsed;
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
        Assert.Equal("client unresponsive", outcome.CloseDescription);
        Assert.InRange(elapsed, s_fast.PingInterval + s_fast.PongTimeout - TimeSpan.FromMilliseconds(100), s_fast.Deadline + Heartbeat.Slack);

        // The dead client's connection is ended too.
        Assert.True(await client.WaitForEndOfStreamAsync(s_fast.CloseTimeout + Heartbeat.Slack), "the client connection must be closed");
        var reaped = Assert.Single(fixture.Logs.WithEventId(2001));
        Assert.Contains("client leg dead", reaped.Message);
    }

    [Fact]
    public async Task Silent_http2_client_is_reaped_and_the_backend_sees_close_1001()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast, h2cClient: true);

        // A ClientWebSocket that never calls ReceiveAsync never processes (so never answers) a ping.
        await using var client = await TestWebSocket.ConnectHttp2Async(fixture.Ws("/record", h2c: true));
        var sinceLastByte = Stopwatch.StartNew();
        var outcome = await fixture.Probe.Outcome.WaitAsync(s_fast.Deadline + Heartbeat.Slack);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
        Assert.InRange(sinceLastByte.Elapsed, s_fast.PingInterval + s_fast.PongTimeout - TimeSpan.FromMilliseconds(100), s_fast.Deadline + Heartbeat.Slack);
    }

    [Theory]
    [InlineData(false, BackendProtocol.Http1)]
    [InlineData(true, BackendProtocol.Http1)]
    [InlineData(false, BackendProtocol.H2c)]
    public async Task Silent_backend_is_reaped_and_the_client_gets_close_1001(bool h2cClient, BackendProtocol backend)
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast, backendProtocol: backend, h2cClient: h2cClient);
        await using var client = h2cClient
            ? await TestWebSocket.ConnectHttp2Async(fixture.Ws("/silent", h2c: true))
            : await TestWebSocket.ConnectHttp1Async(fixture.Ws("/silent"));
        var sinceLastByte = Stopwatch.StartNew();

        var (status, description) = await client.Socket.ReceiveCloseAsync(s_fast.Deadline + Heartbeat.Slack + TimeSpan.FromSeconds(1));
        var elapsed = sinceLastByte.Elapsed;
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("backend unresponsive", description);
        Assert.InRange(elapsed, s_fast.PingInterval + s_fast.PongTimeout - TimeSpan.FromMilliseconds(100), s_fast.Deadline + Heartbeat.Slack);

        // The backend connection is ended once the client answered (or at CloseTimeout).
        await client.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "ok", CancellationToken.None);
        var backendEnd = await fixture.Probe.Outcome.WaitAsync(s_fast.CloseTimeout + Heartbeat.Slack);
        Assert.True(backendEnd.Aborted);
    }

    [Fact]
    public async Task Blackholed_link_is_reaped_within_the_deadline()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast);
        await using var relay = new BlackholeRelay(new IPEndPoint(IPAddress.Loopback, fixture.Proxy.PublicUri.Port));
        var viaRelay = new Uri($"ws://127.0.0.1:{relay.EndPoint.Port}/record");
        await using var client = await TestWebSocket.ConnectHttp1Async(viaRelay);
        Assert.Equal("hi", await client.EchoAsync("hi"));

        // The Wi-Fi walk-out: no FIN, no RST, bytes just stop in both directions.
        relay.Blackhole();
        var sinceBlackhole = Stopwatch.StartNew();
        var outcome = await fixture.Probe.Outcome.WaitAsync(s_fast.Deadline + Heartbeat.Slack);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
        Assert.InRange(sinceBlackhole.Elapsed, TimeSpan.Zero, s_fast.Deadline + Heartbeat.Slack);
    }

    [Fact]
    public async Task Observe_mode_detects_the_silent_client_and_leaves_it_open()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast, mode: "Observe");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await Eventually.UntilAsync(() => fixture.Logs.WithEventId(2002).Any(), "the zombie to be observed", s_fast.Deadline + Heartbeat.Slack);

        // Nothing was closed: the connection still relays both ways.
        await Task.Delay(s_fast.PingInterval + s_fast.PongTimeout);
        Assert.False(fixture.Probe.Outcome.IsCompleted, "Observe mode must not close the backend");
        await client.SendFrameAsync(RawFrame.Text, "still here"u8);
        var echo = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(echo);
        Assert.Equal("still here", Encoding.UTF8.GetString(echo!.Payload));
        Assert.Empty(fixture.Logs.WithEventId(2001));
        Assert.Contains("client leg silent", fixture.Logs.WithEventId(2002).First().Message);
    }

    [Fact]
    public async Task Legs_backend_does_not_ping_the_client_so_a_silent_client_lives()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast, legs: "Backend");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));

        // Nothing at all reaches the client for several heartbeat periods: not a ping, not a Close.
        await Assert.ThrowsAsync<TimeoutException>(() => client.ReceiveFrameAsync(3 * (s_fast.PingInterval + s_fast.PongTimeout)));
        await client.SendFrameAsync(RawFrame.Text, "alive"u8);
        var echo = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("alive", Encoding.UTF8.GetString(echo!.Payload));
    }

    [Fact]
    public async Task Reload_shortens_the_policy_of_live_connections_and_drops_none()
    {
        var slow = new Heartbeat(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1));
        await using var fixture = await RelayFixture.StartAsync(output, slow);
        await using var live = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));

        // A pending receive is what makes a ClientWebSocket answer pings: a live application is reading.
        var receive = live.ReceiveTextAsync();
        await using var silent = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        var faster = fixture.Config.Clone()
            .Set("Reaper:Heartbeat:PingInterval", Heartbeat.Format(s_fast.PingInterval))
            .Set("Reaper:Heartbeat:PongTimeout", Heartbeat.Format(s_fast.PongTimeout));
        Assert.Equal(ReloadOutcome.Applied, await fixture.Proxy.ReloadAsync(faster));
        var sinceReload = Stopwatch.StartNew();

        // The silent connection adopts the new durations at its next tick and is reaped...
        var outcome = await fixture.Probe.Outcome.WaitAsync(s_fast.Deadline + Heartbeat.Slack);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
        Assert.InRange(sinceReload.Elapsed, TimeSpan.Zero, s_fast.Deadline + Heartbeat.Slack);

        // ...while the live one, which answers pings, was not dropped by the reload.
        await Task.Delay(s_fast.Deadline);
        await live.SendTextAsync("still echoing");
        Assert.Equal("still echoing", await receive);
    }

    [Fact]
    public async Task The_activity_timeout_still_bounds_the_wait_for_the_backends_upgrade_response()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_fast,
            configure: c => c.Set("ReverseProxy:Clusters:backend:HttpRequest:ActivityTimeout", "00:00:01"));
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        var waiting = Stopwatch.StartNew();
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(fixture.Ws("/hang"), new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token));
        Assert.Equal(HttpStatusCode.GatewayTimeout, ws.HttpStatusCode);
        Assert.InRange(waiting.Elapsed, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(1) + Heartbeat.Slack);
    }
}
