namespace ReaperProxy.Configuration;

/// <summary>
/// One validated snapshot of the <c>Reaper</c> section plus the routes' policy choices. A reload
/// publishes a new snapshot; live connections re-resolve their policy from it at their next tick.
/// </summary>
public sealed class ReaperSettings
{
    /// <summary>The default admin listener.</summary>
    public const string DefaultAdminUrls = "http://127.0.0.1:9464";

    /// <summary>The route metadata key that names a policy.</summary>
    public const string PolicyMetadataKey = "ReaperPolicy";

    /// <summary>The route metadata key that caps the route's WebSockets open at once.</summary>
    public const string MaxConnectionsMetadataKey = "ReaperMaxConnections";

    /// <summary>The fewest characters an admin token may have: a short one can be guessed.</summary>
    public const int MinAdminTokenLength = 16;

    /// <summary>Snapshot used before any configuration is read.</summary>
    public static ReaperSettings Empty { get; } = new(
        DefaultAdminUrls,
        HeartbeatPolicy.Default,
        new Dictionary<string, HeartbeatPolicy>(StringComparer.OrdinalIgnoreCase),
        new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase),
        LogFormat.Simple,
        maxConnections: null,
        DefaultDrainPeriod);

    /// <summary>The default <see cref="DrainPeriod"/>: sized for a rolling update.</summary>
    public static readonly TimeSpan DefaultDrainPeriod = TimeSpan.FromSeconds(10);

    /// <summary>The longest <see cref="DrainPeriod"/> accepted.</summary>
    public static readonly TimeSpan MaxDrainPeriod = TimeSpan.FromHours(1);

    /// <summary>Creates a snapshot.</summary>
    public ReaperSettings(
        string adminUrls,
        HeartbeatPolicy defaultPolicy,
        IReadOnlyDictionary<string, HeartbeatPolicy> policies,
        IReadOnlyDictionary<string, string?> routePolicies,
        LogFormat logFormat,
        int? maxConnections,
        TimeSpan drainPeriod)
    {
        DrainPeriod = drainPeriod;
        MaxConnections = maxConnections;
        AdminUrls = adminUrls;
        DefaultPolicy = defaultPolicy;
        Policies = policies;
        RoutePolicies = routePolicies;
        LogFormat = logFormat;
    }

    /// <summary>
    /// <c>Reaper:Drain:Period</c>: on shutdown, the WebSockets still open get their Close 1001 spread
    /// evenly over this long, so their clients do not all reconnect in the same instant. Zero closes all
    /// at once. Default 10 s.
    /// </summary>
    public TimeSpan DrainPeriod { get; }

    /// <summary><c>Reaper:Limits</c>: request header limits (start only) and upgrades in progress (live).</summary>
    public LimitsSettings Limits { get; init; } = LimitsSettings.Default;

    /// <summary>
    /// <c>Reaper:AdminToken</c>: when set, <c>/metrics</c> and <c>/connections</c> on the admin listener
    /// want <c>Authorization: Bearer</c> with it (<c>/healthz</c> and <c>/readyz</c> stay open for probes).
    /// </summary>
    public string? AdminToken { get; init; }

    /// <summary>
    /// <c>Reaper:AdminTokenFile</c>: the same token read from a file (a mounted Kubernetes Secret),
    /// re-read while the process runs so a rotated Secret applies without a restart.
    /// </summary>
    public string? AdminTokenFile { get; init; }

    /// <summary>Route id → its <c>Metadata:ReaperMaxConnections</c> (null: no cap of its own).</summary>
    public IReadOnlyDictionary<string, int?> RouteMaxConnections { get; init; } = new Dictionary<string, int?>(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// A route's own cap on WebSockets open at once, by the same rule as <see cref="PolicyForRoute(string, string?)"/>:
    /// Reaper's reading of the route wins when it knows it; otherwise the metadata as YARP hands it over
    /// (<paramref name="metadataValue"/>, e.g. routes from another config provider), when it is a positive
    /// whole number. Null: no cap beyond <see cref="EffectiveMaxConnections"/>.
    /// </summary>
    public int? MaxConnectionsForRoute(string routeId, string? metadataValue)
    {
        if (RouteMaxConnections.TryGetValue(routeId, out var configured))
        {
            return configured;
        }

        return ReaperSettingsReader.TryParseCount(metadataValue, out var max) ? max : null;
    }

    /// <summary><c>Reaper:Transport</c>: socket scheduling, read at start only.</summary>
    public TransportSettings Transport { get; init; } = TransportSettings.Default;

    /// <summary>The longest CloseTimeout of any policy: how long the last closing handshake of a drain may take.</summary>
    public TimeSpan LongestCloseTimeout => Policies.Values.Select(p => p.CloseTimeout).Append(DefaultPolicy.CloseTimeout).Max();

    /// <summary><c>Reaper:AdminUrls</c>: the admin listener(s), <c>;</c>-separated.</summary>
    public string AdminUrls { get; }

    /// <summary><c>Reaper:Heartbeat</c> resolved over the built-in defaults.</summary>
    public HeartbeatPolicy DefaultPolicy { get; }

    /// <summary><c>Reaper:Policies</c>, each resolved over <see cref="DefaultPolicy"/>.</summary>
    public IReadOnlyDictionary<string, HeartbeatPolicy> Policies { get; }

    /// <summary>Route id → the policy name in its <c>Metadata:ReaperPolicy</c> (null: the default).</summary>
    public IReadOnlyDictionary<string, string?> RoutePolicies { get; }

    /// <summary>
    /// <c>Reaper:MaxConnections</c>: the most WebSockets proxied at once; null: derived from the
    /// process's open-file limit (<see cref="OpenFileLimit.AutomaticMaxConnections"/>).
    /// </summary>
    public int? MaxConnections { get; }

    /// <summary>The cap in force: <see cref="MaxConnections"/> or the automatic one.</summary>
    public int EffectiveMaxConnections => MaxConnections ?? OpenFileLimit.AutomaticMaxConnections;

    /// <summary><c>Reaper:LogFormat</c>: console log format.</summary>
    public LogFormat LogFormat { get; }

    /// <summary>
    /// The one rule for a route's policy: Reaper's own reading of the route (<see cref="RoutePolicies"/>,
    /// from the configuration this snapshot was read from) wins when it knows the route, even when it says
    /// "no policy"; otherwise the route's <c>Metadata:ReaperPolicy</c> as YARP hands it over
    /// (<paramref name="metadataPolicyName"/>, e.g. routes from another config provider); otherwise, and for
    /// names no policy has, the default. The middleware, the relay at each tick and <c>--check-config</c> all ask here.
    /// </summary>
    public HeartbeatPolicy PolicyForRoute(string routeId, string? metadataPolicyName) =>
        PolicyNamed(RoutePolicies.TryGetValue(routeId, out var configured) ? configured : metadataPolicyName);

    /// <summary>The effective policy of a route by its id alone; the default for unknown routes.</summary>
    public HeartbeatPolicy PolicyForRoute(string? routeId) =>
        routeId is null ? DefaultPolicy : PolicyForRoute(routeId, metadataPolicyName: null);

    /// <summary>The effective policy for a policy name from route metadata (null or unknown: the default).</summary>
    public HeartbeatPolicy PolicyNamed(string? name) =>
        name is not null && Policies.TryGetValue(name, out var policy) ? policy : DefaultPolicy;

    /// <summary>The smallest interval any policy uses; the shared heartbeat tick follows it.</summary>
    public TimeSpan SmallestInterval()
    {
        var smallest = Smallest(DefaultPolicy);
        foreach (var policy in Policies.Values)
        {
            var s = Smallest(policy);
            if (s < smallest)
            {
                smallest = s;
            }
        }

        return smallest;

        static TimeSpan Smallest(HeartbeatPolicy p)
        {
            var s = p.PingInterval < p.PongTimeout ? p.PingInterval : p.PongTimeout;
            s = p.CloseTimeout < s ? p.CloseTimeout : s;
            return p.IdleTimeout is { } idle && idle < s ? idle : s;
        }
    }
}

/// <summary>Console log output format.</summary>
public enum LogFormat
{
    /// <summary>One human-readable line per event.</summary>
    Simple,

    /// <summary>One JSON object per line, for log pipelines.</summary>
    Json,
}
