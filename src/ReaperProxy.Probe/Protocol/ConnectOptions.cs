namespace ReaperProxy.Probe.Protocol;

/// <summary>How to open a probe connection.</summary>
/// <param name="Uri">The ws:// or wss:// address.</param>
/// <param name="Headers">Extra request headers, in order (<c>-H</c>); they replace the probe's own Host, Origin or User-Agent.</param>
/// <param name="Subprotocols">Offered in <c>Sec-WebSocket-Protocol</c>, in order; none when empty.</param>
/// <param name="Origin">The <c>Origin</c> header, when set.</param>
/// <param name="Insecure">Accept any TLS certificate (self-signed, expired, another name).</param>
/// <param name="Timeout">For the TCP connect, the TLS handshake and the upgrade together.</param>
internal sealed record ConnectOptions(
    Uri Uri,
    IReadOnlyList<KeyValuePair<string, string>> Headers,
    IReadOnlyList<string> Subprotocols,
    string? Origin,
    bool Insecure,
    TimeSpan Timeout);
