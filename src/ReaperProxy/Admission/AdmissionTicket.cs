namespace ReaperProxy.Admission;

/// <summary>
/// The slots one admitted WebSocket request holds: the global one (<c>Reaper:MaxConnections</c>), its
/// route's (when the route has a cap) and, until the response starts (the backend answered the upgrade,
/// or the proxy answered an error), one of <c>Reaper:Limits:MaxUpgradesInProgress</c>. Each is released
/// exactly once, whichever path ends the request.
/// </summary>
internal sealed class AdmissionTicket(ConnectionLimiter global, ConnectionLimiter? route, ConnectionLimiter upgrades)
{
    private int _upgradeReleased;
    private int _released;

    /// <summary>For <c>HttpResponse.OnStarting</c>: the upgrade is no longer in progress.</summary>
    public static readonly Func<object, Task> OnResponseStarting = static state =>
    {
        ((AdmissionTicket)state).UpgradeDone();
        return Task.CompletedTask;
    };

    public void UpgradeDone()
    {
        if (Interlocked.Exchange(ref _upgradeReleased, 1) == 0)
        {
            upgrades.Exit();
        }
    }

    /// <summary>The request is over: every slot goes back.</summary>
    public void Release()
    {
        UpgradeDone();
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            route?.Exit();
            global.Exit();
        }
    }
}
