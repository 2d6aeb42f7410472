namespace ReaperProxy.Relay;

/// <summary>Why a proxied WebSocket ended (the <c>reason</c> tag of <c>reaper.connections.closed</c>).</summary>
internal enum CloseReason
{
    /// <summary>Not decided yet.</summary>
    None,

    /// <summary>The client started the closing handshake or closed its connection.</summary>
    ClientClose,

    /// <summary>The backend started the closing handshake or closed its connection.</summary>
    BackendClose,

    /// <summary>The client leg stopped answering and was reaped.</summary>
    ClientDead,

    /// <summary>The backend leg stopped answering and was reaped.</summary>
    BackendDead,

    /// <summary>A closing handshake was not answered within CloseTimeout.</summary>
    CloseTimeout,

    /// <summary>No data frame for IdleTimeout.</summary>
    IdleTimeout,

    /// <summary>A peer sent a frame that breaks RFC 6455.</summary>
    ProtocolError,

    /// <summary>The client connection failed (reset, I/O error).</summary>
    ClientError,

    /// <summary>The backend connection failed (reset, I/O error).</summary>
    BackendError,

    /// <summary>The proxy shut down.</summary>
    Shutdown,
}

internal static class CloseReasonNames
{
    public static string ToTag(this CloseReason reason) => reason switch
    {
        CloseReason.ClientClose => "client_close",
        CloseReason.BackendClose => "backend_close",
        CloseReason.ClientDead => "client_dead",
        CloseReason.BackendDead => "backend_dead",
        CloseReason.CloseTimeout => "close_timeout",
        CloseReason.IdleTimeout => "idle_timeout",
        CloseReason.ProtocolError => "protocol_error",
        CloseReason.ClientError => "client_error",
        CloseReason.BackendError => "backend_error",
        CloseReason.Shutdown => "shutdown",
        _ => "unknown",
    };
}
