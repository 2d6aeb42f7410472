using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ReaperProxy.Metrics;

/// <summary>
/// ReaperProxy's instruments (meter <c>ReaperProxy</c>). The names are a public contract: in
/// Prometheus they read <c>reaper_connections_active</c>, <c>reaper_connections_reaped_total</c>,
/// <c>reaper_pong_rtt_seconds_bucket</c>, … (see the README's metrics reference).
/// Tag values arrive as plain strings (<c>client</c>, <c>backend</c>, <c>client_close</c>, …): the relay
/// owns its vocabulary and names it; this layer never names the relay's types.
/// </summary>
internal sealed class ReaperMetrics
{
    public const string MeterName = "ReaperProxy";

    // Seconds-scale boundaries: the SDK's default buckets (0–10000) suit milliseconds, not these.
    private static readonly double[] s_rttBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    private static readonly double[] s_durationBuckets = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400];

    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _opened;
    private readonly Counter<long> _closed;
    private readonly Counter<long> _reaped;
    private readonly Counter<long> _observed;
    private readonly Counter<long> _pings;
    private readonly Histogram<double> _rtt;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _reloads;
    private readonly Counter<long> _refused;
    private readonly Counter<long> _rejected;
    private readonly Meter _meter;

    public ReaperMetrics(IMeterFactory meterFactory)
    {
        var meter = _meter = meterFactory.Create(MeterName);
        _active = meter.CreateUpDownCounter<long>("reaper.connections.active", "{connection}",
            "Proxied WebSockets open now under a heartbeat policy.");
        _opened = meter.CreateCounter<long>("reaper.connections.opened", "{connection}",
            "Proxied WebSockets opened under a heartbeat policy.");
        _closed = meter.CreateCounter<long>("reaper.connections.closed", "{connection}",
            "Proxied WebSockets that ended, by reason.");
        _reaped = meter.CreateCounter<long>("reaper.connections.reaped", "{connection}",
            "Connections the proxy ended itself: a dead leg (pong_timeout), an unanswered closing handshake (close_timeout), or no data (idle_timeout).");
        _observed = meter.CreateCounter<long>("reaper.zombies.observed", "{connection}",
            "Dead legs detected in Observe mode (nothing was closed).");
        _pings = meter.CreateCounter<long>("reaper.pings.sent", "{ping}",
            "Pings the proxy sent to quiet legs.");
        _rtt = meter.CreateHistogram("reaper.pong.rtt", "s",
            "Round trip from the proxy's ping to the pong that answered it.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_rttBuckets });
        _duration = meter.CreateHistogram("reaper.connection.duration", "s",
            "Lifetime of proxied WebSockets, by the reason they ended.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_durationBuckets });
        _refused = meter.CreateCounter<long>("reaper.connections.refused", "{connection}",
            "WebSockets refused with 503 before reaching a backend: Reaper:MaxConnections were open (limit), the route's ReaperMaxConnections were (route_limit), Reaper:Limits:MaxUpgradesInProgress upgrades were waiting (upgrade_limit), or the proxy was draining (shutdown).");
        _rejected = meter.CreateCounter<long>("reaper.upgrades.rejected", "{request}",
            "Requests that asked for a WebSocket with a malformed handshake, answered 400 before any backend was contacted, by what was wrong.");
        _reloads = meter.CreateCounter<long>("reaper.config.reloads", "{reload}",
            "Changes to the --config file: applied, or rejected (invalid; the last good configuration kept serving).");
    }

    /// <summary>Counts reload outcomes reported by <paramref name="reporter"/>.</summary>
    public void Observe(Configuration.ConfigReloadReporter reporter)
    {
        reporter.ReloadApplied += () => _reloads.Add(1, new KeyValuePair<string, object?>("result", "applied"));
        reporter.ReloadRejected += () => _reloads.Add(1, new KeyValuePair<string, object?>("result", "rejected"));
    }

    /// <summary>Exports <c>reaper.upgrades.in_progress</c>: WebSocket requests admitted and waiting for the backend's answer.</summary>
    public void ObserveUpgradesInProgress(Func<int> read) =>
        _meter.CreateObservableUpDownCounter("reaper.upgrades.in_progress", () => (long)read(), "{request}",
            "WebSocket requests admitted whose backend has not answered the upgrade yet (capped by Reaper:Limits:MaxUpgradesInProgress).");

    public void Opened(string route, string cluster, string protocol)
    {
        var tags = new TagList { { "route", route }, { "cluster", cluster } };
        _active.Add(1, tags);
        tags.Add("protocol", protocol);
        _opened.Add(1, tags);
    }

    /// <summary><paramref name="reason"/>: why it ended, e.g. <c>client_close</c>, <c>backend_dead</c>, <c>idle_timeout</c>.</summary>
    public void Closed(string route, string cluster, string reason, TimeSpan duration)
    {
        var tags = new TagList { { "route", route }, { "cluster", cluster } };
        _active.Add(-1, tags);
        tags.Add("reason", reason);
        _closed.Add(1, tags);
        _duration.Record(duration.TotalSeconds, new TagList { { "route", route }, { "reason", reason } });
    }

    /// <summary><paramref name="leg"/>: <c>client</c>, <c>backend</c>, or <c>both</c> for an idle timeout (a connection-level decision).</summary>
    public void Reaped(string route, string cluster, string leg, string reason) =>
        _reaped.Add(1, new TagList { { "route", route }, { "cluster", cluster }, { "leg", leg }, { "reason", reason } });

    /// <summary>What Enforce would have reaped: same <paramref name="leg"/> and <paramref name="reason"/> values as <see cref="Reaped"/>.</summary>
    public void ZombieObserved(string route, string cluster, string leg, string reason) =>
        _observed.Add(1, new TagList { { "route", route }, { "cluster", cluster }, { "leg", leg }, { "reason", reason } });

    /// <summary><paramref name="reason"/>: <c>limit</c> (MaxConnections open), <c>route_limit</c> (the route's cap), <c>upgrade_limit</c> (MaxUpgradesInProgress) or <c>shutdown</c> (the proxy is draining).</summary>
    public void Refused(string route, string cluster, string reason = "limit") =>
        _refused.Add(1, new TagList { { "route", route }, { "cluster", cluster }, { "reason", reason } });

    /// <summary><paramref name="reason"/>: what was wrong with the handshake (<c>body</c>, <c>method</c>, <c>upgrade</c>, <c>connection</c>, <c>key</c>, <c>connect</c>).</summary>
    public void UpgradeRejected(string route, string cluster, string reason) =>
        _rejected.Add(1, new TagList { { "route", route }, { "cluster", cluster }, { "reason", reason } });

    /// <summary><paramref name="leg"/>: <c>client</c> or <c>backend</c>.</summary>
    public void PingSent(string route, string leg) => _pings.Add(1, new TagList { { "route", route }, { "leg", leg } });

    /// <summary><paramref name="leg"/>: <c>client</c> or <c>backend</c>.</summary>
    public void PongRtt(string route, string leg, TimeSpan rtt) =>
        _rtt.Record(rtt.TotalSeconds, new TagList { { "route", route }, { "leg", leg } });
}
