using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using ReaperProxy.Relay;

namespace ReaperProxy.Proxying;

/// <summary>
/// Lets a relayed WebSocket see its backend connection's socket, so the relay can read the kernel's
/// acknowledged-bytes counter toward the backend (<see cref="TcpProgress"/>) instead of judging a slow
/// backend by how long one write lasts.
/// </summary>
/// <remarks>
/// SocketsHttpHandler does not say which connection serves a request, and a connection opened for one
/// request may serve another (HTTP/1.1 requests wait for whichever connection frees up first; pooled
/// connections are reused). So the link is made where it is certain: the proxy's connect callback
/// returns a <see cref="TrackedNetworkStream"/>, and every write through it runs in the execution
/// context of the request that writes it (SocketsHttpHandler writes an HTTP/1.1 request's headers, and
/// YARP copies an upgraded connection's bytes, on the request's own flow). The middleware puts the
/// relay's <see cref="SocketSlot"/> in an <see cref="AsyncLocal{T}"/> for that flow; the stream fills
/// it with its socket. Over HTTP/2 the frames are written by the connection's own loop, so the slot may
/// stay empty; such a WebSocket is judged by the sockets of the HTTP/2 connections to its backend
/// (<see cref="Http2To"/>), and by its own write completions.
/// </remarks>
internal static class BackendSockets
{
    private static readonly AsyncLocal<SocketSlot?> s_current = new();

    // HTTP/2 connections multiplex many WebSockets on one socket, written by the connection's own loop,
    // so no stream can claim it. Their sockets are kept per backend endpoint ("host:port") instead, and
    // a relayed WebSocket with no socket of its own is judged by the HTTP/2 connections to its backend.
    private static readonly ConcurrentDictionary<string, SocketSet> s_http2 = new(StringComparer.OrdinalIgnoreCase);

    // A connection being set up, from its connect to its protocol being known (weak: a failed attempt leaves nothing).
    private static readonly ConditionalWeakTable<HttpRequestMessage, TrackedNetworkStream> s_connecting = new();

    /// <summary>Starts tracking for the request running on this flow; returns the slot the socket lands in.</summary>
    public static SocketSlot Track()
    {
        var slot = new SocketSlot();
        s_current.Value = slot;
        return slot;
    }

    /// <summary>SocketsHttpHandler's default connect (dual-mode TCP, Nagle off), returning a tracked stream.</summary>
    public static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
            var stream = new TrackedNetworkStream(socket);
            s_connecting.AddOrUpdate(context.InitialRequestMessage, stream);
            return stream;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The HTTP/2 connections to the backend at <paramref name="destination"/> (an address such as <c>https://host:port/</c>).</summary>
    public static SocketSet Http2To(Uri destination) => s_http2.GetOrAdd(EndpointKey(destination.IdnHost, destination.Port), static _ => new SocketSet());

    /// <summary>
    /// SocketsHttpHandler's hook once a connection's protocol is negotiated (ALPN for TLS, or prior
    /// knowledge for h2c): an HTTP/2 connection's socket joins its endpoint's set until it closes.
    /// </summary>
    public static ValueTask<Stream> OnPlaintextStreamAsync(SocketsHttpPlaintextStreamFilterContext context, CancellationToken cancellationToken)
    {
        // Over TLS the plaintext stream is the SslStream around ours: find ours by the connection's request.
        var tracked = context.PlaintextStream as TrackedNetworkStream
            ?? (s_connecting.TryGetValue(context.InitialRequestMessage, out var pending) ? pending : null);
        s_connecting.Remove(context.InitialRequestMessage);
        if (context.NegotiatedHttpVersion == HttpVersion.Version20 && tracked is not null && context.InitialRequestMessage.RequestUri is { } uri)
        {
            tracked.JoinHttp2(s_http2.GetOrAdd(EndpointKey(uri.IdnHost, uri.Port), static _ => new SocketSet()));
        }

        return ValueTask.FromResult(context.PlaintextStream);
    }

    private static string EndpointKey(string host, int port) => $"{host}:{port}";

    private sealed class TrackedNetworkStream(Socket socket) : NetworkStream(socket, ownsSocket: true)
    {
        private SocketSet? _http2;

        public void JoinHttp2(SocketSet set)
        {
            _http2 = set;
            set.Add(Socket);
        }

        protected override void Dispose(bool disposing)
        {
            _http2?.Remove(Socket);
            base.Dispose(disposing);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Claim();
            return base.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Claim();
            return base.WriteAsync(buffer, offset, count, cancellationToken);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Claim();
            base.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            Claim();
            base.Write(buffer, offset, count);
        }

        // The last connection a request wrote to is the one it uses (a retry on a fresh connection
        // replaces a stale pooled one).
        private void Claim()
        {
            if (s_current.Value is { } slot && !ReferenceEquals(slot.Socket, Socket))
            {
                slot.Socket = Socket;
            }
        }
    }
}
