using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>One WebSocket frame as a raw peer saw it (payload unmasked).</summary>
public sealed record RawFrame(bool Fin, byte Rsv, byte Opcode, bool Masked, byte[] Payload)
{
    /// <summary>The frame exactly as it was on the wire.</summary>
    public byte[] Wire { get; init; } = [];

    public const byte Continuation = 0x0;
    public const byte Text = 0x1;
    public const byte Binary = 0x2;
    public const byte Close = 0x8;
    public const byte Ping = 0x9;
    public const byte Pong = 0xA;

    /// <summary>The status code of a Close frame (1005 when it carries none).</summary>
    public int CloseCode => Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload) : 1005;

    /// <summary>The reason text of a Close frame.</summary>
    public string CloseReason => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : string.Empty;

    public override string ToString() => $"opcode {Opcode} fin {Fin} rsv {Rsv} masked {Masked} {Payload.Length} bytes";
}

/// <summary>
/// A WebSocket peer over a raw socket, for peers that misbehave: it answers nothing on its own (no
/// automatic pongs, no closing handshake), writes arbitrary bytes in arbitrary chunks, and reads frames
/// exactly as they arrived.
/// </summary>
public sealed class RawWebSocket : IAsyncDisposable
{
    private readonly NetworkStream _stream;
    private readonly RawFrameReader _reader;

    private RawWebSocket(Socket socket, int leftoverStart, int leftoverEnd, byte[] buffer)
    {
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new RawFrameReader(_stream, buffer.AsSpan(leftoverStart, leftoverEnd - leftoverStart));
    }

    /// <summary>The response headers of the upgrade.</summary>
    public string HandshakeResponse { get; private set; } = string.Empty;

    /// <summary>
    /// Completes an HTTP/1.1 upgrade to <paramref name="uri"/> (ws://host:port/path), from
    /// <paramref name="localAddress"/> when given (e.g. a loopback address of its own, such as 127.0.0.7).
    /// </summary>
    public static async Task<RawWebSocket> ConnectAsync(Uri uri, TimeSpan? timeout = null, IPAddress? localAddress = null)
    {
        var (socket, head, leftover) = await UpgradeAsync(uri, receiveBufferSize: null, readStep: 16 * 1024, timeout, localAddress);
        return new RawWebSocket(socket, 0, leftover.Length, leftover) { HandshakeResponse = head };
    }

    /// <summary>
    /// Opens a TCP connection and completes an HTTP/1.1 WebSocket upgrade by hand, checking
    /// <c>Sec-WebSocket-Accept</c>. Returns the socket, the response headers and the bytes read past them.
    /// </summary>
    /// <param name="uri">ws://host:port/path.</param>
    /// <param name="receiveBufferSize">SO_RCVBUF, set before connecting (the window scale is negotiated in the SYN).</param>
    /// <param name="readStep">The most read at once while looking for the end of the headers.</param>
    /// <param name="timeout">For the whole upgrade (default 10 s).</param>
    /// <param name="localAddress">The address to connect from (bound before connecting); the system's choice when null.</param>
    public static async Task<(Socket Socket, string Head, byte[] Leftover)> UpgradeAsync(
        Uri uri, int? receiveBufferSize, int readStep, TimeSpan? timeout, IPAddress? localAddress = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (receiveBufferSize is { } size)
            {
                socket.ReceiveBufferSize = size;
            }

            if (localAddress is not null)
            {
                socket.Bind(new IPEndPoint(localAddress, 0));
            }

            await socket.ConnectAsync(uri.Host, uri.Port, cts.Token);
            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            var request = $"GET {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                          $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, cts.Token);

            var buffer = new byte[16 * 1024];
            var filled = 0;
            int headerEnd;
            while ((headerEnd = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
            {
                if (filled == buffer.Length)
                {
                    throw new IOException("upgrade response headers over 16 KiB");
                }

                var n = await socket.ReceiveAsync(buffer.AsMemory(filled, Math.Min(readStep, buffer.Length - filled)), SocketFlags.None, cts.Token);
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

            return (socket, head, buffer[(headerEnd + 4)..filled]);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Encodes one frame (masked as a client must, unless told otherwise).</summary>
    public static byte[] EncodeFrame(byte opcode, ReadOnlySpan<byte> payload, bool fin = true, bool mask = true, byte rsv = 0)
    {
        var lengthBytes = payload.Length <= 125 ? 0 : payload.Length <= ushort.MaxValue ? 2 : 8;
        var frame = new byte[2 + lengthBytes + (mask ? 4 : 0) + payload.Length];
        frame[0] = (byte)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
        frame[1] = (byte)((mask ? 0x80 : 0) | (lengthBytes == 0 ? payload.Length : lengthBytes == 2 ? 126 : 127));
        if (lengthBytes == 2)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)payload.Length);
        }
        else if (lengthBytes == 8)
        {
            BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(2), (ulong)payload.Length);
        }

        var offset = 2 + lengthBytes;
        if (mask)
        {
            var key = RandomNumberGenerator.GetBytes(4);
            key.CopyTo(frame, offset);
            offset += 4;
            for (var i = 0; i < payload.Length; i++)
            {
                frame[offset + i] = (byte)(payload[i] ^ key[i & 3]);
            }
        }
        else
        {
            payload.CopyTo(frame.AsSpan(offset));
        }

        return frame;
    }

    /// <summary>A Close frame's payload: code and reason.</summary>
    public static byte[] ClosePayload(int code, string reason = "")
    {
        var payload = new byte[2 + Encoding.UTF8.GetByteCount(reason)];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)code);
        Encoding.UTF8.GetBytes(reason, payload.AsSpan(2));
        return payload;
    }

    public Task SendFrameAsync(byte opcode, ReadOnlySpan<byte> payload, bool fin = true, byte rsv = 0) =>
        SendRawAsync(EncodeFrame(opcode, payload, fin, mask: true, rsv));

    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Reads the next frame; null at the end of the stream. Throws TimeoutException past <paramref name="timeout"/>.</summary>
    public Task<RawFrame?> ReceiveFrameAsync(TimeSpan? timeout = null) => _reader.ReceiveFrameAsync(timeout);

    /// <summary>Reads frames until one is not a Ping (the proxy's pings are not answered).</summary>
    public Task<RawFrame?> ReceiveSkippingPingsAsync(TimeSpan? timeout = null) => _reader.ReceiveSkippingPingsAsync(timeout);

    /// <summary>Reads frames until the stream ends or <paramref name="timeout"/> passes (see <see cref="RawFrameReader.WaitForEndOfStreamAsync"/>).</summary>
    public Task<bool> WaitForEndOfStreamAsync(TimeSpan timeout) => _reader.WaitForEndOfStreamAsync(timeout);

    public ValueTask DisposeAsync()
    {
        _stream.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Reads WebSocket frames from a raw stream exactly as they arrive.</summary>
public sealed class RawFrameReader(Stream stream, ReadOnlySpan<byte> leftover = default)
{
    private readonly byte[] _buffer = Init(leftover);
    private int _start;
    private int _end = leftover.Length;

    /// <summary>Reads the next frame; null at the end of the stream. Throws TimeoutException past <paramref name="timeout"/>.</summary>
    public async Task<RawFrame?> ReceiveFrameAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            if (!await FillAsync(2, cts.Token))
            {
                return null;
            }

            var b0 = _buffer[_start];
            var b1 = _buffer[_start + 1];
            var len7 = b1 & 0x7F;
            var masked = (b1 & 0x80) != 0;
            var headerLength = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
            if (!await FillAsync(headerLength, cts.Token))
            {
                return null;
            }

            long length = len7 switch
            {
                126 => BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(_start + 2)),
                127 => (long)BinaryPrimitives.ReadUInt64BigEndian(_buffer.AsSpan(_start + 2)),
                _ => len7,
            };
            if (!await FillAsync(headerLength + (int)length, cts.Token))
            {
                return null;
            }

            var wire = _buffer.AsSpan(_start, headerLength + (int)length).ToArray();
            var payload = wire.AsSpan(headerLength).ToArray();
            if (masked)
            {
                var key = wire.AsSpan(headerLength - 4, 4);
                for (var i = 0; i < payload.Length; i++)
                {
                    payload[i] ^= key[i & 3];
                }
            }

            _start += wire.Length;
            return new RawFrame((b0 & 0x80) != 0, (byte)((b0 >> 4) & 7), (byte)(b0 & 0x0F), masked, payload) { Wire = wire };
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"no complete frame within {timeout ?? TimeSpan.FromSeconds(10)}");
        }
    }

    /// <summary>Reads frames until one is not a Ping (the proxy's pings are not answered).</summary>
    public async Task<RawFrame?> ReceiveSkippingPingsAsync(TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            var frame = await ReceiveFrameAsync(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
            if (frame is null || frame.Opcode != RawFrame.Ping)
            {
                return frame;
            }
        }
    }

    /// <summary>
    /// Waits, reading and discarding, until the peer ends the connection (FIN or reset). Returns false
    /// if it is still open after <paramref name="timeout"/> (the second seed's bounded poll).
    /// </summary>
    public async Task<bool> WaitForEndOfStreamAsync(TimeSpan timeout)
    {
        _start = _end;
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var scratch = new byte[16 * 1024];
            while (true)
            {
                var n = await stream.ReadAsync(scratch, cts.Token);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static byte[] Init(ReadOnlySpan<byte> leftover)
    {
        var buffer = new byte[512 * 1024];
        leftover.CopyTo(buffer);
        return buffer;
    }

    private async Task<bool> FillAsync(int count, CancellationToken token)
    {
        if (_end - _start >= count)
        {
            return true;
        }

        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        while (_end < count)
        {
            var n = await stream.ReadAsync(_buffer.AsMemory(_end), token);
            if (n == 0)
            {
                return false;
            }

            _end += n;
        }

        return true;
    }

}
