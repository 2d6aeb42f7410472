using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.Relay;
using ReaperProxy.Metrics;
using ReaperProxy.Tests.Framing;
using ReaperProxy.Tests.Relay;

namespace ReaperProxy.Tests.Metrics;

/// <summary>
/// The instruments on a fake clock: exact values (round trips, durations) and tags on the close paths
/// the heartbeat decides itself. (The functional MetricsTests cover the same paths end to end.)
/// </summary>
public sealed class ReaperMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    private IMeterFactory Factory => _services.GetRequiredService<IMeterFactory>();

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task A_dead_client_records_pings_the_backend_rtt_the_reap_and_an_exact_duration()
    {
        using var active = Collect<long>("reaper.connections.active");
        using var opened = Collect<long>("reaper.connections.opened");
        using var closed = Collect<long>("reaper.connections.closed");
        using var reaped = Collect<long>("reaper.connections.reaped");
        using var pings = Collect<long>("reaper.pings.sent");
        using var rtt = Collect<double>("reaper.pong.rtt");
        using var duration = Collect<double>("reaper.connection.duration");
        await using var h = RelayHarness.Create(metrics: new ReaperMetrics(Factory));

        // Attach counted the connection as opened and active.
        Assert.Equal(1, active.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal("http/1.1", Assert.Single(opened.GetMeasurementSnapshot()).Tags["protocol"]);

        var read = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var backendPing = ReferenceFrameReader.ReadAll(await RelayHarness.Guard(read)).Single();
        read = h.ToBackendAsync();

        // The backend answers 40 ms later: that is the round trip recorded.
        h.Time.Advance(TimeSpan.FromMilliseconds(40));
        await h.FromBackendAsync(WireFrame.Pong(backendPing.Payload).ToBytes());
        var backendRtt = Assert.Single(rtt.GetMeasurementSnapshot());
        Assert.Equal("backend", backendRtt.Tags["leg"]);
        Assert.Equal("route", backendRtt.Tags["route"]);
        Assert.Equal(0.040, backendRtt.Value, precision: 6);

        h.AdvanceAndTick(RelayHarness.PongTimeout);
        Assert.Equal(CloseReason.ClientDead, h.Relay.Reason);
        var reap = Assert.Single(reaped.GetMeasurementSnapshot());
        Assert.Equal(("client", "pong_timeout", "route", "cluster"),
            ((string?)reap.Tags["leg"], (string?)reap.Tags["reason"], (string?)reap.Tags["route"], (string?)reap.Tags["cluster"]));
        Assert.Equal(["backend", "client"], pings.GetMeasurementSnapshot().Select(m => (string?)m.Tags["leg"]).Order());

        // The request pipeline returns: closed, duration and active are settled exactly once.
        h.Relay.MarkEnded(CloseReason.ClientError);
        h.Relay.MarkEnded(CloseReason.ClientError);
        Assert.Equal("client_dead", Assert.Single(closed.GetMeasurementSnapshot()).Tags["reason"]);
        var lifetime = Assert.Single(duration.GetMeasurementSnapshot());
        Assert.Equal("client_dead", lifetime.Tags["reason"]);
        Assert.Equal((RelayHarness.PingInterval + TimeSpan.FromMilliseconds(40) + RelayHarness.PongTimeout).TotalSeconds, lifetime.Value, precision: 6);
        Assert.Equal(0, active.GetMeasurementSnapshot().Sum(m => m.Value));
    }

    [Fact]
    public async Task Observe_mode_records_each_silent_leg_once_and_no_reap()
    {
        using var observed = Collect<long>("reaper.zombies.observed");
        using var reaped = Collect<long>("reaper.connections.reaped");
        await using var h = RelayHarness.Create(mode: "Observe", metrics: new ReaperMetrics(Factory));
        var read = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        await RelayHarness.Guard(read);
        read = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PongTimeout);

        // Still silent a full cycle later: recorded once per leg, not once per cycle.
        h.AdvanceAndTick(RelayHarness.PingInterval);
        h.AdvanceAndTick(RelayHarness.PongTimeout);

        Assert.Equal(["backend", "client"], observed.GetMeasurementSnapshot().Select(m => (string?)m.Tags["leg"]).Order());
        Assert.Empty(reaped.GetMeasurementSnapshot());
        Assert.Equal(CloseReason.None, h.Relay.Reason);
    }

    [Fact]
    public async Task An_idle_timeout_is_recorded_as_a_connection_level_reap()
    {
        using var reaped = Collect<long>("reaper.connections.reaped");
        await using var h = RelayHarness.Create(legs: "Client", metrics: new ReaperMetrics(Factory), idleTimeout: "8s");
        var read = h.ToBackendAsync();
        h.AdvanceAndTick(TimeSpan.FromSeconds(8));

        Assert.Equal(CloseReason.IdleTimeout, h.Relay.Reason);
        var reap = Assert.Single(reaped.GetMeasurementSnapshot());
        Assert.Equal(("both", "idle_timeout"), ((string?)reap.Tags["leg"], (string?)reap.Tags["reason"]));
    }

    private MetricCollector<T> Collect<T>(string instrument)
        where T : struct => new(Factory, ReaperMetrics.MeterName, instrument);
}
