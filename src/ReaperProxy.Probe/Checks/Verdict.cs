namespace ReaperProxy.Probe.Checks;

/// <summary>What a check concluded.</summary>
internal enum Verdict
{
    /// <summary>Within the bound: nothing to fix here.</summary>
    Pass,

    /// <summary>Outside the bound: the sentence says what that costs and what to do.</summary>
    Fail,

    /// <summary>Nothing proven either way (interrupted, nothing to measure, ...): the sentence says why.</summary>
    Inconclusive,

    /// <summary>The check could not run: its connection failed (exit code 2).</summary>
    Error,
}
