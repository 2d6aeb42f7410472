namespace ReaperProxy.Admin;

/// <summary>
/// Readiness as <c>/readyz</c> reports it: ready once the configuration is loaded and the public
/// listeners are bound, not ready again from the moment shutdown begins.
/// </summary>
public sealed class ReadinessState
{
    private volatile bool _ready;

    /// <summary>Whether the proxy takes traffic.</summary>
    public bool IsReady => _ready;

    /// <summary>A short word for <c>/readyz</c>.</summary>
    public string Status { get; private set; } = "starting";

    internal void MarkReady()
    {
        Status = "ready";
        _ready = true;
    }

    internal void MarkStopping()
    {
        _ready = false;
        Status = "shutting down";
    }
}
