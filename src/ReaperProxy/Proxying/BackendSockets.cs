using System.Net.Sockets;
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
/// stay empty; the relay then falls back to write completions.
/// </remarks>
internal static class BackendSockets
{
    private static readonly AsyncLocal<SocketSlot?> s_current = new();

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
            return new TrackedNetworkStream(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private sealed class TrackedNetworkStream(Socket socket) : NetworkStream(socket, ownsSocket: true)
    {
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
