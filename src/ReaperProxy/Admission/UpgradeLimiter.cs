namespace ReaperProxy.Admission;

/// <summary>
/// <c>Reaper:Limits:MaxUpgradesInProgress</c>: WebSocket requests admitted whose response has not
/// started (the backend has not answered the upgrade yet). Its own type so the container hands the
/// middleware this counter and not the global <see cref="ConnectionLimiter"/>.
/// </summary>
internal sealed class UpgradeLimiter(TimeProvider time)
{
    public ConnectionLimiter Limiter { get; } = new(time);
}
