namespace ReaperProxy.Probe.Checks;

/// <summary>One check's outcome: the verdict, its sentence and what was measured (see docs/probe.md for the JSON).</summary>
internal sealed record CheckResult
{
    /// <summary>The check's name (<c>silent-client</c>, ...).</summary>
    public required string Check { get; init; }

    public required Verdict Verdict { get; init; }

    /// <summary>One plain sentence a non-expert understands: what happened and what it means.</summary>
    public required string Summary { get; init; }

    /// <summary>The key figures, short, for the table.</summary>
    public required string Measured { get; init; }

    /// <summary>The check's limit.</summary>
    public required TimeSpan Limit { get; init; }

    /// <summary>The option whose value decides pass or fail (<c>--max-reap</c>, ...), if the limit alone does not.</summary>
    public string? BoundOption { get; init; }

    public TimeSpan? Bound { get; init; }

    /// <summary>From the upgrade to the end of the check.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>Stopped by Ctrl-C before it could conclude.</summary>
    public bool Interrupted { get; init; }

    /// <summary>Why the check could not run (<see cref="Verdict.Error"/>).</summary>
    public string? Error { get; init; }

    public ConnectionEnd EndedBy { get; init; }

    /// <summary>When the server ended the connection (null when it did not).</summary>
    public TimeSpan? EndedAfter { get; init; }

    public CloseSeen? CloseReceived { get; init; }

    public CloseSeen? CloseSent { get; init; }

    /// <summary>When each ping from the server arrived, from the upgrade.</summary>
    public IReadOnlyList<TimeSpan> PingTimes { get; init; } = [];

    public int PongsSent { get; init; }

    /// <summary>Payload bytes of text, binary and continuation frames received.</summary>
    public long DataBytesReceived { get; init; }

    /// <summary>Check-specific figures (docs/probe.md lists them per check); values are numbers, strings, booleans or null.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Details { get; init; } = [];

    /// <summary>A check that could not connect.</summary>
    public static CheckResult Failed(string check, TimeSpan limit, string error) => new()
    {
        Check = check,
        Verdict = Verdict.Error,
        Summary = "The check could not run: " + error + ".",
        Measured = "no connection",
        Limit = limit,
        Error = error,
        EndedBy = ConnectionEnd.NotConnected,
    };
}
