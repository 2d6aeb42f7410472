using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace ReaperProxy.Admission;

/// <summary>
/// The checks a request that asks for a WebSocket must pass before YARP contacts a backend (RFC 6455
/// §4.1, §4.2.1; RFC 8441 §4). Left to YARP, a malformed handshake is not refused but changed: an
/// upgrade with a body, two <c>Upgrade</c> headers or <c>Upgrade: h2c, websocket</c> went to the backend
/// as a plain request without its upgrade headers (the backend decided what it was), a <c>POST</c>
/// upgrade went as a <c>GET</c>, a bad or missing <c>Sec-WebSocket-Key</c> went as it was, and a
/// <c>CONNECT</c> ended in a 502 with a warning and a stack trace per request. Refusing each with 400
/// leaves no request whose meaning the proxy and the backend could read differently (request smuggling:
/// <c>Content-Length</c> with <c>Transfer-Encoding</c>).
/// </summary>
/// <remarks>
/// Kestrel itself resets an HTTP/2 stream (RST_STREAM PROTOCOL_ERROR) before any application code runs
/// when an extended CONNECT lacks <c>:scheme</c> or <c>:path</c>, has <c>:scheme</c> but no
/// <c>:protocol</c>, or names a <c>:scheme</c> other than the connection's. <c>Sec-WebSocket-Version</c>
/// and subprotocols are the backend's to judge (it answers 426 with the versions it speaks, RFC 6455 §4.4).
/// </remarks>
internal static class UpgradeRequestRules
{
    /// <summary>
    /// What is wrong with the request, or null when it is not a WebSocket request at all or a well-formed one.
    /// </summary>
    public static UpgradeProblem? Problem(HttpContext context, IHttpUpgradeFeature? upgradeFeature, IHttpExtendedConnectFeature? connect)
    {
        var request = context.Request;
        var isConnect = HttpMethods.IsConnect(request.Method);
        if (!HttpProtocol.IsHttp11(request.Protocol) && !HttpProtocol.IsHttp10(request.Protocol))
        {
            // HTTP/2 (and 3): a WebSocket is an extended CONNECT with :protocol websocket.
            if (!isConnect)
            {
                return null;
            }

            if (connect is not { IsExtendedConnect: true })
            {
                return new("connect", "CONNECT without :protocol: only WebSockets (RFC 8441 extended CONNECT, :protocol websocket) are proxied");
            }

            return string.Equals(connect.Protocol, "websocket", StringComparison.OrdinalIgnoreCase)
                ? null
                : new UpgradeProblem("connect", "extended CONNECT with a :protocol other than websocket");
        }

        if (isConnect)
        {
            return new("connect", "CONNECT: ReaperProxy is not a forward proxy");
        }

        var headers = request.Headers;
        var upgrade = headers.Upgrade;
        if (!NamesWebSocket(upgrade) && headers.SecWebSocketKey.Count == 0)
        {
            return null;
        }

        // An upgrade hands the connection over once the headers end: a body would be read as frames (or
        // as the next request) by one side and as a body by the other. Content-Length with
        // Transfer-Encoding (the request smuggling shape) is one: Kestrel drops the Content-Length
        // (RFC 9112 §6.3), so it shows here as a chunked body.
        if (headers.ContainsKey(HeaderNames.TransferEncoding) || request.ContentLength is > 0)
        {
            return new("body", "a WebSocket upgrade request must not have a body");
        }

        if (!HttpMethods.IsGet(request.Method))
        {
            return new("method", $"a WebSocket upgrade must be a GET, not {request.Method}");
        }

        if (upgrade.Count != 1 || !string.Equals(upgrade[0]?.Trim(), "websocket", StringComparison.OrdinalIgnoreCase))
        {
            return new("upgrade", "Upgrade must be exactly one 'websocket'");
        }

        if (upgradeFeature is not { IsUpgradableRequest: true })
        {
            return new("connection", "not an upgradable HTTP/1.1 request (Connection: Upgrade missing, or HTTP/1.0)");
        }

        var key = headers.SecWebSocketKey;
        Span<byte> nonce = stackalloc byte[18];
        return key.Count == 1 && Convert.TryFromBase64String(key[0]?.Trim() ?? string.Empty, nonce, out var length) && length == 16
            ? null
            : new UpgradeProblem("key", "Sec-WebSocket-Key must be one base64-encoded 16-byte value");
    }

    // Any Upgrade value that names websocket, alone or in a list: such a request asks for a WebSocket.
    private static bool NamesWebSocket(StringValues upgrade)
    {
        foreach (var value in upgrade)
        {
            if (value is not null && value.Contains("websocket", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
