using ReaperProxy.Configuration;

namespace ReaperProxy.Admission;

/// <summary>
/// Caps the WebSockets proxied at once (every mode, Off included). Each costs the process two file
/// descriptors (client and backend sockets); a process that runs out of descriptors cannot even start
/// a thread, and the .NET runtime then dies with "Out of memory", taking every live connection with it.
/// Refusing the next WebSocket with 503 is the lesser harm. Lock-free: one interlocked counter. The cap
/// itself comes from <see cref="ReaperSettings.EffectiveMaxConnections"/>.
/// </summary>
internal sealed class ConnectionLimiter
{
    private static readonly TimeSpan s_logInterval = TimeSpan.FromSeconds(10);
    private readonly LogThrottle _refusals;
    private int _open;

    public ConnectionLimiter(TimeProvider time) => _refusals = new LogThrottle(time, s_logInterval);

    /// <summary>WebSockets holding a slot now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>Takes a slot if fewer than <paramref name="max"/> are taken; pair a true result with <see cref="Exit"/>.</summary>
    public bool TryEnter(int max)
    {
        if (Interlocked.Increment(ref _open) <= max)
        {
            return true;
        }

        Interlocked.Decrement(ref _open);
        _refusals.Count();
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _open);

    /// <summary>
    /// After a refusal: true at most once per 10 s (a flood of refusals must not flood the log), with
    /// how many were refused since the last line, this one included.
    /// </summary>
    public bool ShouldLog(out long refused) => _refusals.ShouldLog(out refused);
}
