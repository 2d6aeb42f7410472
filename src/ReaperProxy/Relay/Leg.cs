namespace ReaperProxy.Relay;

/// <summary>One side of a proxied WebSocket.</summary>
internal enum Leg
{
    /// <summary>The connection between the client and the proxy.</summary>
    Client,

    /// <summary>The connection between the proxy and the backend.</summary>
    Backend,
}

internal static class LegNames
{
    public static string ToTag(this Leg leg) => leg == Leg.Client ? "client" : "backend";

    /// <summary>The other leg.</summary>
    public static Leg Other(this Leg leg) => leg == Leg.Client ? Leg.Backend : Leg.Client;
}
