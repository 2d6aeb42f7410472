namespace ReaperProxy.Probe.Checks;

/// <summary>A whole run: what was probed, how it went, every check's result in catalog order.</summary>
internal sealed record RunReport
{
    public required Uri Url { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public required TimeSpan Duration { get; init; }

    /// <summary>Ctrl-C (or SIGTERM) stopped the run.</summary>
    public bool Interrupted { get; init; }

    /// <summary>The status line of the first connection's upgrade answer.</summary>
    public string? StatusLine { get; init; }

    public string? Subprotocol { get; init; }

    public required IReadOnlyList<CheckResult> Results { get; init; }

    public int Count(Verdict verdict) => Results.Count(r => r.Verdict == verdict);
}
