namespace ReaperProxy.Configuration;

/// <summary>
/// The effective heartbeat policy of a route: <c>Reaper:Heartbeat</c> with a named policy from
/// <c>Reaper:Policies</c> laid over it. Immutable; a reload publishes new instances.
/// </summary>
public sealed record HeartbeatPolicy
{
    /// <summary>The built-in defaults, used where the configuration says nothing.</summary>
    public static HeartbeatPolicy Default { get; } = new();

    /// <summary>The policy's name, or <c>null</c> for the default policy (<c>Reaper:Heartbeat</c>).</summary>
    public string? Name { get; init; }

    /// <summary>Default <see cref="HeartbeatMode.Enforce"/>.</summary>
    public HeartbeatMode Mode { get; init; } = HeartbeatMode.Enforce;

    /// <summary>Default <see cref="HeartbeatLegs.Both"/>.</summary>
    public HeartbeatLegs Legs { get; init; } = HeartbeatLegs.Both;

    /// <summary>How long a leg may stay quiet (no byte from it) before it gets a Ping. Default 15 s.</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long after a Ping a leg may stay silent before it is dead. Default 10 s.</summary>
    public TimeSpan PongTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a closing handshake may take before the proxy finishes it. Default 5 s.</summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Close a connection that carries no data frame for this long; <c>null</c> (default) never.</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>
    /// The latest a dead leg is reaped, counted from the last byte heard from it:
    /// <c>PingInterval + PongTimeout</c> plus 25% of the smaller of the two.
    /// </summary>
    public TimeSpan ReapDeadline => PingInterval + PongTimeout + (Min(PingInterval, PongTimeout) / 4);

    /// <summary>Whether the proxy pings the given leg under this policy.</summary>
    public bool Pings(HeartbeatLegs leg) => Mode != HeartbeatMode.Off && (Legs & leg) != 0;

    /// <summary>One line for logs and <c>--check-config</c>.</summary>
    public string Describe() =>
        $"Mode={Mode} Legs={Legs} PingInterval={Duration.Format(PingInterval)} PongTimeout={Duration.Format(PongTimeout)} " +
        $"CloseTimeout={Duration.Format(CloseTimeout)} IdleTimeout={(IdleTimeout is { } idle ? Duration.Format(idle) : "off")}" +
        (Mode == HeartbeatMode.Off ? string.Empty : $" (dead leg reaped within {Duration.Format(ReapDeadline)})");

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
