using System.Net.Sockets;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>
/// A WebSocket client on a slow link: a raw socket whose receive buffer is made small
/// (<see cref="Socket.ReceiveBufferSize"/> set before connecting, so the TCP window it advertises stays
/// small) and that reads through a <see cref="PacedFrameReader"/> at a steady pace, answering every Ping
/// it reads with a masked Pong. Kernel buffers cannot hide its slowness: whatever is sent to it waits
/// in the sender's buffers and moves only as fast as it reads. Stop calling
/// <see cref="ReadAsync"/> and it models a frozen client (a stopped process, a link gone dark): it never
/// reads again and never closes.
/// </summary>
public sealed class PacedRawClient : IAsyncDisposable
{
    private readonly Socket _socket;

    private PacedRawClient(Socket socket, ReadOnlySpan<byte> leftover, bool keepPayload)
    {
        _socket = socket;
        Reader = new PacedFrameReader(socket, maskOutgoing: true, leftover, keepPayload);
    }

    /// <summary>What it read, answered and saw so far.</summary>
    public PacedFrameReader Reader { get; }

    /// <summary>
    /// Completes an HTTP/1.1 upgrade to <paramref name="uri"/> (ws://host:port/path) over a socket with a
    /// receive buffer of <paramref name="receiveBufferSize"/> bytes.
    /// </summary>
    public static async Task<PacedRawClient> ConnectAsync(Uri uri, int receiveBufferSize = 4096, bool keepPayload = false, TimeSpan? timeout = null)
    {
        // Headers read in small steps, so that little of the stream after them is taken early.
        var (socket, _, leftover) = await RawWebSocket.UpgradeAsync(uri, receiveBufferSize, readStep: 512, timeout);
        return new PacedRawClient(socket, leftover, keepPayload);
    }

    /// <inheritdoc cref="PacedFrameReader.ReadAsync"/>
    public Task<PacedStop> ReadAsync(Pace pace, TimeSpan duration, long? stopAfterBytes = null, int? stopAfterMessages = null) =>
        Reader.ReadAsync(pace, duration, stopAfterBytes, stopAfterMessages);

    /// <summary>Ends the connection (no closing handshake: the client just goes).</summary>
    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
