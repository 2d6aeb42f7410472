using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

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
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            // Before connecting: the window scale is negotiated in the SYN.
            socket.ReceiveBufferSize = receiveBufferSize;
            await socket.ConnectAsync(uri.Host, uri.Port, cts.Token);
            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            var request = $"GET {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                          $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, cts.Token);

            // Headers only: read in small steps so that little of the stream after them is taken early.
            var buffer = new byte[16 * 1024];
            var filled = 0;
            int headerEnd;
            while ((headerEnd = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
            {
                if (filled == buffer.Length)
                {
                    throw new IOException("upgrade response headers over 16 KiB");
                }

                var n = await socket.ReceiveAsync(buffer.AsMemory(filled, Math.Min(512, buffer.Length - filled)), SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    throw new IOException("the server closed the connection during the upgrade");
                }

                filled += n;
            }

            var head = Encoding.ASCII.GetString(buffer, 0, headerEnd);
            if (!head.StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
            {
                throw new IOException("upgrade refused: " + head);
            }

            var expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
            if (!head.Contains(expected, StringComparison.Ordinal))
            {
                throw new IOException("bad Sec-WebSocket-Accept in: " + head);
            }

            return new PacedRawClient(socket, buffer.AsSpan(headerEnd + 4, filled - headerEnd - 4), keepPayload);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
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
