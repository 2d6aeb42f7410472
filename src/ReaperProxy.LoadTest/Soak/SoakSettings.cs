using System.Globalization;
using System.Net;

namespace ReaperProxy.LoadTest.Soak;

/// <summary>The soak's options (see the usage text in <see cref="Cli"/>).</summary>
internal sealed record SoakSettings
{
    public required string ProxyDll { get; init; }

    public required TimeSpan Duration { get; init; }

    public required int PortBase { get; init; }

    public required int Healthy { get; init; }

    public required int Idle { get; init; }

    public required TimeSpan SilencedEvery { get; init; }

    public required int ChurnConcurrency { get; init; }

    public required double ChurnRate { get; init; }

    public required TimeSpan ReloadEvery { get; init; }

    public required TimeSpan PingInterval { get; init; }

    public required TimeSpan PongTimeout { get; init; }

    public required IPAddress[] Sources { get; init; }

    public required string OutDir { get; init; }

    public int ProxyPort => PortBase;

    public int ProxyH2Port => PortBase + 1;

    public int AdminPort => PortBase + 2;

    public int BackendPort => PortBase + 3;

    /// <summary>README "The reaping deadline": PingInterval + PongTimeout + 25% of the smaller.</summary>
    public TimeSpan Deadline => PingInterval + PongTimeout + (PingInterval < PongTimeout ? PingInterval : PongTimeout) / 4;

    /// <summary>What the issue allows: every silenced connection reaped within the deadline + 10%.</summary>
    public TimeSpan ReapBound => Deadline * 1.1;

    public static SoakSettings Parse(Options options)
    {
        var minutesText = options.Get("minutes", "10");
        if (!double.TryParse(minutesText, NumberStyles.Float, CultureInfo.InvariantCulture, out var minutes) || minutes is < 0.25 or > 120)
        {
            throw new FormatException($"--minutes: '{minutesText}' must be a number in [0.25, 120]");
        }

        var dll = options.Require("proxy-dll");
        if (!File.Exists(dll))
        {
            throw new FormatException($"--proxy-dll: '{dll}' does not exist (build src/ReaperProxy first)");
        }

        var ping = options.Duration("ping-interval", TimeSpan.FromSeconds(3), TimeSpan.FromMinutes(1));
        var pong = options.Duration("pong-timeout", TimeSpan.FromSeconds(3), TimeSpan.FromMinutes(1));
        return new SoakSettings
        {
            ProxyDll = Path.GetFullPath(dll),
            Duration = TimeSpan.FromMinutes(minutes),
            PortBase = options.Int("port-base", 27300, min: 1024, max: 65000),
            Healthy = options.Int("healthy", 32, min: 1, max: 2000),
            Idle = options.Int("idle", 200, min: 0, max: 5000),
            SilencedEvery = options.Duration("silenced-every", TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5)),
            ChurnConcurrency = options.Int("churn-concurrency", 2, min: 0, max: 100),
            ChurnRate = options.Int("churn-rate", 40, min: 1, max: 100_000),
            ReloadEvery = options.Duration("reload-every", TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(10)),
            PingInterval = ping,
            PongTimeout = pong,
            Sources = options.Sources("source") is [var one] && one.Equals(IPAddress.Loopback) && options.Get("source") is null
                ? [IPAddress.Parse("127.0.0.1"), IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.0.0.3"), IPAddress.Parse("127.0.0.4")]
                : options.Sources("source"),
            OutDir = options.Get("out") is { } outDir ? Path.GetFullPath(outDir) : Directory.CreateTempSubdirectory("reaper-soak-").FullName,
        };
    }
}
