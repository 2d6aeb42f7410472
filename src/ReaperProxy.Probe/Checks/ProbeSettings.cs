using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>Everything a run needs, validated by the command line (the defaults are the documented ones).</summary>
internal sealed record ProbeSettings
{
    /// <summary>Where and how to connect.</summary>
    public required ConnectOptions Connect { get; init; }

    /// <summary>The checks to run, by name, in catalog order.</summary>
    public required IReadOnlyList<string> Checks { get; init; }

    /// <summary><c>--limit DURATION</c>: how long any check may wait for the server. Default 120 s.</summary>
    public TimeSpan DefaultLimit { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary><c>--limit CHECK=DURATION</c>: per-check limits over <see cref="DefaultLimit"/>.</summary>
    public IReadOnlyDictionary<string, TimeSpan> Limits { get; init; } = new Dictionary<string, TimeSpan>();

    /// <summary><c>--max-reap</c>: silent-client passes when the server drops the silent client within this. Default 60 s.</summary>
    public TimeSpan MaxReap { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary><c>--max-close-wait</c>: no-close-reply and client-close-abandoned pass when TCP ends within this. Default 30 s.</summary>
    public TimeSpan MaxCloseWait { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary><c>--max-stall</c>: stalled-frame passes when the server gives up on the half frame within this. Default 60 s.</summary>
    public TimeSpan MaxStall { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary><c>--max-rtt</c>: ping-answer passes when the p99 round trip is within this. Default 1 s.</summary>
    public TimeSpan MaxRtt { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary><c>--pings</c>: how many pings ping-answer sends. Default 10.</summary>
    public int Pings { get; init; } = 10;

    /// <summary><c>--close-trigger</c>: a text message that makes the server start a closing handshake.</summary>
    public string? CloseTrigger { get; init; }

    /// <summary><c>--echo</c>: a text message the server echoes, sent until slow-reader has enough to read.</summary>
    public string? Echo { get; init; }

    /// <summary><c>--read-rate</c>: slow-reader's reading speed, bytes per second. Default 2048.</summary>
    public int ReadRate { get; init; } = 2048;

    /// <summary><c>--read-bytes</c>: how much slow-reader reads before it passes. Default 64 KiB.</summary>
    public int ReadBytes { get; init; } = 64 * 1024;

    /// <summary>The limit of one check.</summary>
    public TimeSpan LimitFor(string check) => Limits.TryGetValue(check, out var limit) ? limit : DefaultLimit;
}
