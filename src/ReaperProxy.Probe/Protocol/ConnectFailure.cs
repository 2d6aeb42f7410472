namespace ReaperProxy.Probe.Protocol;

/// <summary>Why the probe could not get a WebSocket: each is a connection error (exit code 2).</summary>
internal enum ConnectFailureKind
{
    /// <summary>The host name does not resolve.</summary>
    Dns,

    /// <summary>Nothing listens on the port (TCP RST to the SYN).</summary>
    Refused,

    /// <summary>No answer in time (connect, TLS or the upgrade).</summary>
    Timeout,

    /// <summary>Another network error (unreachable, reset during the upgrade, ...).</summary>
    Network,

    /// <summary>The TLS handshake failed (untrusted or mismatched certificate, not a TLS port, ...).</summary>
    Tls,

    /// <summary>The server answered the upgrade with another HTTP status than 101.</summary>
    Status,

    /// <summary>A 101 answer that breaks RFC 6455 §4.1 (wrong Sec-WebSocket-Accept, ...) or not HTTP at all.</summary>
    Handshake,
}

/// <summary>A failed connection or upgrade, with a message that says what happened in plain words.</summary>
internal sealed class ConnectFailureException(ConnectFailureKind kind, string message, Exception? inner = null)
    : Exception(message, inner)
{
    /// <summary>What went wrong.</summary>
    public ConnectFailureKind Kind { get; } = kind;

    /// <summary>The HTTP status of a <see cref="ConnectFailureKind.Status"/> failure.</summary>
    public int? StatusCode { get; init; }
}
