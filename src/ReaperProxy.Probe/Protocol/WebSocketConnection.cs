using System.Net.Sockets;

namespace ReaperProxy.Probe.Protocol;

/// <summary>An upgraded connection: the socket (for its TCP state), the stream (TLS or not) and its framing.</summary>
internal sealed class WebSocketConnection : IAsyncDisposable
{
    public WebSocketConnection(Socket socket, Stream stream, ReadOnlySpan<byte> leftover, string statusLine, string? subprotocol, SocketTuning tuning)
    {
        Socket = socket;
        Stream = stream;
        StatusLine = statusLine;
        Subprotocol = subprotocol;
        Reader = new FrameReader(tuning.ReadThrough?.Invoke(stream) ?? stream, leftover, tuning.ReadBufferSize);
        Writer = new FrameWriter(stream);
    }

    /// <summary>The TCP socket under the stream.</summary>
    public Socket Socket { get; }

    /// <summary>The byte stream after the upgrade (an <see cref="System.Net.Security.SslStream"/> for wss://).</summary>
    public Stream Stream { get; }

    /// <summary>The upgrade response's status line, e.g. <c>HTTP/1.1 101 Switching Protocols</c>.</summary>
    public string StatusLine { get; }

    /// <summary>The subprotocol the server chose, if any.</summary>
    public string? Subprotocol { get; }

    /// <summary>Frames from the server.</summary>
    public FrameReader Reader { get; }

    /// <summary>Frames to the server.</summary>
    public FrameWriter Writer { get; }

    /// <summary>Ends the connection at once (no closing handshake: the checks decide what they send).</summary>
    public ValueTask DisposeAsync()
    {
        try
        {
            Socket.Close(0);
        }
        catch (ObjectDisposedException)
        {
            // Already closed.
        }

        Stream.Dispose();
        return ValueTask.CompletedTask;
    }
}
