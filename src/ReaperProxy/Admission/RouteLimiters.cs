using System.Collections.Concurrent;

namespace ReaperProxy.Admission;

/// <summary>
/// One <see cref="ConnectionLimiter"/> per route with a cap of its own (route metadata
/// <c>ReaperMaxConnections</c>), created on first use. The cap is read from the current settings at each
/// admission, so a reload applies to the next WebSocket; the count of a route survives the reload (a
/// lowered cap cuts nothing, it refuses until enough have ended).
/// </summary>
internal sealed class RouteLimiters(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, ConnectionLimiter> _routes = new(StringComparer.OrdinalIgnoreCase);

    public ConnectionLimiter For(string routeId) => _routes.GetOrAdd(routeId, static (_, t) => new ConnectionLimiter(t), time);
}
