namespace ReaperProxy.Probe.Checks;

/// <summary>One check: its own connection, its own limit, a verdict.</summary>
internal interface ICheck
{
    /// <summary>The name on the command line and in reports (<c>silent-client</c>).</summary>
    string Name { get; }

    /// <summary>One line for <c>--help</c>: what the check does.</summary>
    string Description { get; }

    /// <summary>
    /// Runs to a result: never past <see cref="CheckContext.Limit"/> after its upgrade, and promptly on
    /// <see cref="CheckContext.Interrupt"/> with what it learned so far. Throws only
    /// <see cref="Protocol.ConnectFailureException"/> (its connection could not be opened).
    /// </summary>
    Task<CheckResult> RunAsync(CheckContext context);
}
