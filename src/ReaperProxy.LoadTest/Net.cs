using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;

namespace ReaperProxy.LoadTest;

/// <summary>Client sockets bound to a chosen loopback source address.</summary>
internal static class Net
{
    /// <summary>
    /// An invoker whose connections leave from <paramref name="source"/> (e.g. 127.0.0.2): each source
    /// address has its own ephemeral port range toward the same destination, so tens of thousands of
    /// client connections do not exhaust one address's ports.
    /// </summary>
    public static HttpMessageInvoker CreateInvoker(IPAddress source)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            ConnectTimeout = TimeSpan.FromSeconds(30),
            // HTTP/2 WebSockets are streams; past the server's stream limit (Kestrel: 100) open another connection.
            EnableMultipleHttp2Connections = true,
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(source, 0));
                    var host = IPAddress.Parse(context.DnsEndPoint.Host);
                    await socket.ConnectAsync(new IPEndPoint(host, context.DnsEndPoint.Port), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpMessageInvoker(handler, disposeHandler: true);
    }

    /// <summary>Only loopback targets: this harness never sends traffic anywhere else.</summary>
    public static Uri LoopbackTarget(Options options) => LoopbackUri("target", options.Require("target"));

    /// <summary>A ws:// (or http://) address on IPv4 loopback, or a FormatException naming option <paramref name="name"/>.</summary>
    public static Uri LoopbackUri(string name, string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("ws" or "http") ||
            !IPAddress.TryParse(uri.Host, out var host) || !IPAddress.IsLoopback(host))
        {
            throw new FormatException($"--{name}: '{text}' must be ws://127.x.y.z:PORT/PATH (loopback IPv4 only)");
        }

        return uri;
    }

    /// <summary>
    /// A client WebSocket that never pings on its own (idle means idle: only the proxy pings). Over HTTP/1.1
    /// (Upgrade), or with <paramref name="http2"/> over cleartext HTTP/2 with prior knowledge (extended
    /// CONNECT, RFC 8441), where the invoker's one connection carries many WebSockets as streams.
    /// </summary>
    public static ClientWebSocket NewClient(bool http2 = false)
    {
        var socket = new ClientWebSocket();
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        socket.Options.HttpVersion = http2 ? HttpVersion.Version20 : HttpVersion.Version11;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        return socket;
    }

    /// <summary>
    /// Fills <paramref name="sockets"/> with connected clients, spread round-robin over the invokers'
    /// source addresses; at most 60 s in all.
    /// </summary>
    public static async Task ConnectAllAsync(Uri target, ClientWebSocket?[] sockets, HttpMessageInvoker[] invokers, CancellationToken cancellationToken)
    {
        using var connectDeadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectDeadline.CancelAfter(TimeSpan.FromSeconds(60));
        await Task.WhenAll(Enumerable.Range(0, sockets.Length).Select(async i =>
        {
            var socket = NewClient();
            sockets[i] = socket;
            await socket.ConnectAsync(target, invokers[i % invokers.Length], connectDeadline.Token);
        }));
    }

    /// <summary>Closes every open socket with a normal Close, at most 15 s in all; best effort.</summary>
    public static async Task CloseAllAsync(IEnumerable<ClientWebSocket?> sockets)
    {
        using var closeDeadline = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await Task.WhenAll(sockets.Where(s => s?.State == WebSocketState.Open).Select(async s =>
        {
            try
            {
                await s!.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", closeDeadline.Token);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                // Best effort.
            }
        }));
    }

    /// <summary>Disposes the sockets (unset entries skipped) and the invokers they connected through.</summary>
    public static void DisposeAll(IEnumerable<ClientWebSocket?> sockets, IEnumerable<HttpMessageInvoker> invokers)
    {
        foreach (var socket in sockets)
        {
            socket?.Dispose();
        }

        foreach (var invoker in invokers)
        {
            invoker.Dispose();
        }
    }
}
