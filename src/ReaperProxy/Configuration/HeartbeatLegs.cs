namespace ReaperProxy.Configuration;

/// <summary>Which legs of a proxied WebSocket receive the proxy's pings.</summary>
[Flags]
public enum HeartbeatLegs
{
    /// <summary>Only the client leg (proxy → client pings, unmasked).</summary>
    Client = 1,

    /// <summary>Only the backend leg (proxy → backend pings, masked).</summary>
    Backend = 2,

    /// <summary>Both legs.</summary>
    Both = Client | Backend,
}
