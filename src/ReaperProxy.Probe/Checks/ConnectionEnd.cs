namespace ReaperProxy.Probe.Checks;

/// <summary>How a check's connection ended, as it is written in the JSON report (<c>connection.endedBy</c>).</summary>
internal enum ConnectionEnd
{
    /// <summary><c>server_fin</c>: the server (or something on the path) closed TCP in order.</summary>
    ServerFin,

    /// <summary><c>server_reset</c>: the server (or something on the path) reset or broke the connection.</summary>
    ServerReset,

    /// <summary><c>still_open</c>: still open when the check's limit was reached; the probe then closed it.</summary>
    StillOpen,

    /// <summary><c>probe</c>: the check had what it needed and closed the connection itself.</summary>
    Probe,

    /// <summary><c>interrupted</c>: Ctrl-C; still open at that moment.</summary>
    Interrupted,

    /// <summary><c>not_connected</c>: the connection could not be opened (see the error).</summary>
    NotConnected,
}
