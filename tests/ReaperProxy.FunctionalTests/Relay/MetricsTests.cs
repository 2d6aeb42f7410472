using System.Net.WebSockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// Every instrument and tag on each way a connection ends, read with MetricCollector from the real
/// proxy's meter while real peers drive it.
/// </summary>
public sealed class MetricsTests(ITestOutputHelper output)
{
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(600));

    // For closing handshakes that complete: a CloseTimeout no loaded machine can race (it would count close_timeout).
    private static readonly Heartbeat s_patientClose = s_heartbeat with { CloseTimeout = TimeSpan.FromSeconds(5) };

    [Fact]
    public async Task A_clean_client_close_counts_opened_closed_duration_pings_and_rtt()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_patientClose);
        using var m = new Collectors(fixture);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        Assert.Equal(1, m.ActiveSum());

        // Stay idle long enough to be pinged (a receive is pending, so the client answers).
        var receive = client.Socket.ReceiveAsync(new byte[16], CancellationToken.None);
        await Eventually.UntilAsync(() => m.Rtt.GetMeasurementSnapshot().Any(x => Tag(x.Tags, "leg") == "client"), "a client pong RTT");
        await client.SendTextAsync("x");
        await receive;
        await client.CloseAsync();
        await fixture.Probe.Outcome.WaitAsync(TimeSpan.FromSeconds(5));
        await m.WaitForClosedAsync();

        var opened = Assert.Single(m.Opened.GetMeasurementSnapshot());
        Assert.Equal(("all", "backend", "http/1.1"), (Tag(opened.Tags, "route"), Tag(opened.Tags, "cluster"), Tag(opened.Tags, "protocol")));
        Assert.Equal("client_close", m.ClosedReason());
        Assert.Equal(0, m.ActiveSum());
        var duration = Assert.Single(m.Duration.GetMeasurementSnapshot());
        Assert.Equal("client_close", Tag(duration.Tags, "reason"));
        Assert.InRange(duration.Value, 0.3, 30);
        Assert.Contains(m.Pings.GetMeasurementSnapshot(), x => Tag(x.Tags, "leg") == "client" && Tag(x.Tags, "route") == "all");
        Assert.Contains(m.Pings.GetMeasurementSnapshot(), x => Tag(x.Tags, "leg") == "backend");
        Assert.All(m.Rtt.GetMeasurementSnapshot(), x => Assert.InRange(x.Value, 0, 5));
        Assert.Empty(m.Reaped.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task A_backend_close_counts_backend_close_over_http2()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_patientClose, h2cClient: true);
        using var m = new Collectors(fixture);
        await using var client = await TestWebSocket.ConnectHttp2Async(fixture.Ws("/close-first", h2c: true));
        var (status, _) = await client.Socket.ReceiveCloseAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(WebSocketCloseStatus.NormalClosure, status);
        await client.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        await m.WaitForClosedAsync();

        Assert.Equal("h2", Tag(Assert.Single(m.Opened.GetMeasurementSnapshot()).Tags, "protocol"));
        Assert.Equal("backend_close", m.ClosedReason());
        Assert.Equal(0, m.ActiveSum());
    }

    [Fact]
    public async Task A_dead_client_counts_a_pong_timeout_reap_of_the_client_leg()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        using var m = new Collectors(fixture);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await m.WaitForClosedAsync();

        var reaped = Assert.Single(m.Reaped.GetMeasurementSnapshot());
        Assert.Equal(("client", "pong_timeout", "all", "backend"), (Tag(reaped.Tags, "leg"), Tag(reaped.Tags, "reason"), Tag(reaped.Tags, "route"), Tag(reaped.Tags, "cluster")));
        Assert.Equal("client_dead", m.ClosedReason());
        Assert.Equal(0, m.ActiveSum());
    }

    [Fact]
    public async Task A_dead_backend_counts_a_pong_timeout_reap_of_the_backend_leg()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        using var m = new Collectors(fixture);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/silent"));
        var (status, _) = await client.Socket.ReceiveCloseAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        await client.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        await m.WaitForClosedAsync();

        var reaped = Assert.Single(m.Reaped.GetMeasurementSnapshot());
        Assert.Equal(("backend", "pong_timeout"), (Tag(reaped.Tags, "leg"), Tag(reaped.Tags, "reason")));
        Assert.Equal("backend_dead", m.ClosedReason());
        Assert.Equal(0, m.ActiveSum());
    }

    [Fact]
    public async Task An_unanswered_client_close_counts_a_close_timeout_reap_of_the_backend_leg()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, legs: "Client");
        using var m = new Collectors(fixture);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/silent"));
        await client.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
        await m.WaitForClosedAsync();

        var reaped = Assert.Single(m.Reaped.GetMeasurementSnapshot());
        Assert.Equal(("backend", "close_timeout"), (Tag(reaped.Tags, "leg"), Tag(reaped.Tags, "reason")));
        Assert.Equal("close_timeout", m.ClosedReason());
        Assert.Equal(0, m.ActiveSum());
    }

    [Fact]
    public async Task An_idle_timeout_counts_a_connection_level_reap()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, configure: c => c.Set("Reaper:Heartbeat:IdleTimeout", "800ms"));
        using var m = new Collectors(fixture);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        var (status, _) = await client.Socket.ReceiveCloseAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        await client.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        await m.WaitForClosedAsync();

        var reaped = Assert.Single(m.Reaped.GetMeasurementSnapshot());
        Assert.Equal(("both", "idle_timeout"), (Tag(reaped.Tags, "leg"), Tag(reaped.Tags, "reason")));
        Assert.Equal("idle_timeout", m.ClosedReason());
        Assert.Equal(0, m.ActiveSum());
    }

    [Fact]
    public async Task A_protocol_error_counts_protocol_error()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        using var m = new Collectors(fixture);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await client.SendRawAsync(RawWebSocket.EncodeFrame(0xB, "reserved control opcode"u8));
        await m.WaitForClosedAsync();

        Assert.Equal("protocol_error", m.ClosedReason());
        Assert.Empty(m.Reaped.GetMeasurementSnapshot());
        Assert.Equal(0, m.ActiveSum());
    }

    [Fact]
    public async Task Observe_mode_counts_the_zombie_and_closes_nothing()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, mode: "Observe");
        using var m = new Collectors(fixture);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await Eventually.UntilAsync(() => m.Observed.GetMeasurementSnapshot().Count > 0, "an observed zombie");

        var observed = m.Observed.GetMeasurementSnapshot()[0];
        Assert.Equal(("client", "all", "backend"), (Tag(observed.Tags, "leg"), Tag(observed.Tags, "route"), Tag(observed.Tags, "cluster")));
        Assert.Empty(m.Reaped.GetMeasurementSnapshot());
        Assert.Empty(m.Closed.GetMeasurementSnapshot());
        Assert.Equal(1, m.ActiveSum());
    }

    [Fact]
    public async Task Shutdown_counts_shutdown_and_active_returns_to_zero()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        using var m = new Collectors(fixture);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/record"));
        var closing = client.Socket.ReceiveCloseAsync(TimeSpan.FromSeconds(10));
        var stop = fixture.Proxy.Host.StopAsync();
        await closing;
        await client.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        await stop.WaitAsync(TimeSpan.FromSeconds(10));
        await m.WaitForClosedAsync();

        Assert.Equal("shutdown", m.ClosedReason());
        Assert.Equal(0, m.ActiveSum());
    }

    [Fact]
    public async Task A_backend_that_dies_counts_a_backend_error_and_no_drift_over_many_connections()
    {
        await using var fixture = await RelayFixture.StartAsync(output, new Heartbeat(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1)));
        using var m = new Collectors(fixture);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/vanish"));
        await client.SendTextAsync("last words");
        await m.WaitForClosedAsync();
        Assert.Equal("backend_error", m.ClosedReason());

        // Many connections ending every which way: active comes back to exactly zero.
        var tasks = Enumerable.Range(0, 20).Select(async i =>
        {
            if (i % 2 == 0)
            {
                await using var ws = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
                Assert.Equal("n", await ws.EchoAsync("n"));
                await ws.CloseAsync();
            }
            else
            {
                var raw = await RawWebSocket.ConnectAsync(fixture.Ws("/echo"));
                await raw.DisposeAsync();
            }
        });
        await Task.WhenAll(tasks);
        await Eventually.UntilAsync(() => m.Closed.GetMeasurementSnapshot().Count == 21, "all connections to be counted closed");
        Assert.Equal(0, m.ActiveSum());
        Assert.Equal(21, m.Opened.GetMeasurementSnapshot().Count);
    }

    private static string? Tag(IReadOnlyDictionary<string, object?> tags, string key) => tags.TryGetValue(key, out var v) ? v?.ToString() : null;

    private sealed class Collectors : IDisposable
    {
        public Collectors(RelayFixture fixture)
        {
            var factory = fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
            Active = new(factory, "ReaperProxy", "reaper.connections.active");
            Opened = new(factory, "ReaperProxy", "reaper.connections.opened");
            Closed = new(factory, "ReaperProxy", "reaper.connections.closed");
            Reaped = new(factory, "ReaperProxy", "reaper.connections.reaped");
            Observed = new(factory, "ReaperProxy", "reaper.zombies.observed");
            Pings = new(factory, "ReaperProxy", "reaper.pings.sent");
            Rtt = new(factory, "ReaperProxy", "reaper.pong.rtt");
            Duration = new(factory, "ReaperProxy", "reaper.connection.duration");
        }

        public MetricCollector<long> Active { get; }

        public MetricCollector<long> Opened { get; }

        public MetricCollector<long> Closed { get; }

        public MetricCollector<long> Reaped { get; }

        public MetricCollector<long> Observed { get; }

        public MetricCollector<long> Pings { get; }

        public MetricCollector<double> Rtt { get; }

        public MetricCollector<double> Duration { get; }

        public long ActiveSum() => Active.GetMeasurementSnapshot().Sum(x => x.Value);

        public string? ClosedReason() => Tag(Assert.Single(Closed.GetMeasurementSnapshot()).Tags, "reason");

        public Task WaitForClosedAsync() => Eventually.UntilAsync(() => Closed.GetMeasurementSnapshot().Count > 0, "the connection to be counted closed");

        public void Dispose()
        {
            Active.Dispose();
            Opened.Dispose();
            Closed.Dispose();
            Reaped.Dispose();
            Observed.Dispose();
            Pings.Dispose();
            Rtt.Dispose();
            Duration.Dispose();
        }
    }
}
