namespace ReaperProxy.Probe.Checks;

/// <summary>A Close frame, sent or received, and when (from the upgrade).</summary>
internal sealed record CloseSeen(int Code, string Reason, TimeSpan At);
