using System.Buffers.Binary;
using System.Net.Sockets;

namespace ReaperProxy.Probe.Protocol;

/// <summary>How the server's side of the connection ended, as the probe's reads saw it.</summary>
internal enum StreamEnd
{
    /// <summary>Not ended (yet).</summary>
    None,

    /// <summary>An orderly end of the stream: TCP FIN (or a TLS close_notify before it).</summary>
    Fin,

    /// <summary>The connection was reset (TCP RST) or broke.</summary>
    Reset,
}

/// <summary>
/// Reads server frames from a stream, everything the server sends and as fast as the stream gives it.
/// Data payloads are counted and dropped (bounded memory whatever the server streams); control payloads
/// are kept (at most 125 bytes each, RFC 6455 §5.5).
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-------+-+-------------+-------------------------------+
/// |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
/// |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
/// |N|V|V|V|       |S|             |   (if payload len==126/127)   |
/// | |1|2|3|       |K|             |                               |
/// +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
/// |     Extended payload length continued, if payload len == 127  |
/// + - - - - - - - - - - - - - - - +-------------------------------+
/// |                               |Masking-key, if MASK set to 1  |
/// +-------------------------------+-------------------------------+
/// | Masking-key (continued)       |          Payload Data         |
/// +-------------------------------- - - - - - - - - - - - - - - - +
/// </code>
/// (RFC 6455 §5.2.) A server must not mask (§5.1); a masked frame is reported, and unmasked for reading.
/// </summary>
internal sealed class FrameReader
{
    private const int MaxHeaderLength = 14;
    private readonly Stream _stream;
    private readonly byte[] _buffer;
    private int _start;
    private int _end;

    /// <param name="stream">The connection after the upgrade.</param>
    /// <param name="leftover">Bytes read past the upgrade response's headers (the first frames, possibly).</param>
    /// <param name="bufferSize">The most read from the stream at once.</param>
    public FrameReader(Stream stream, ReadOnlySpan<byte> leftover, int bufferSize = 16 * 1024)
    {
        _stream = stream;
        _buffer = new byte[Math.Max(bufferSize, Math.Max(leftover.Length, MaxHeaderLength + 125))];
        leftover.CopyTo(_buffer);
        _end = leftover.Length;
    }

    /// <summary>How the stream ended, once <see cref="ReadFrameAsync"/> returned null.</summary>
    public StreamEnd End { get; private set; }

    /// <summary>Bytes taken from the stream so far (frame headers included).</summary>
    public long BytesRead { get; private set; }

    /// <summary>
    /// The next whole frame, or null when the server ended the connection (see <see cref="End"/>), also in
    /// the middle of a frame. Cancellation throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public async ValueTask<Frame?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        if (!await FillAsync(2, cancellationToken))
        {
            return null;
        }

        var b0 = _buffer[_start];
        var b1 = _buffer[_start + 1];
        var len7 = b1 & 0x7F;
        var masked = (b1 & 0x80) != 0;
        var headerLength = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (!await FillAsync(headerLength, cancellationToken))
        {
            return null;
        }

        var header = _buffer.AsSpan(_start, headerLength);
        var length = len7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(header[2..]),
            127 => (long)(BinaryPrimitives.ReadUInt64BigEndian(header[2..]) & long.MaxValue),
            _ => len7,
        };
        var maskKey = masked ? header[^4..].ToArray() : null;
        var opcode = (Opcode)(b0 & 0x0F);
        var fin = (b0 & 0x80) != 0;
        Consume(headerLength);

        var isControl = (b0 & 0x08) != 0;
        var keep = isControl ? (int)Math.Min(length, 125) : 0;
        var payload = new byte[keep];
        var remaining = length;
        var kept = 0;
        while (remaining > 0)
        {
            if (_end == _start && !await FillAsync(1, cancellationToken))
            {
                return null;
            }

            var take = (int)Math.Min(remaining, _end - _start);
            var copy = Math.Min(take, keep - kept);
            if (copy > 0)
            {
                _buffer.AsSpan(_start, copy).CopyTo(payload.AsSpan(kept));
                kept += copy;
            }

            Consume(take);
            remaining -= take;
        }

        if (maskKey is not null)
        {
            for (var i = 0; i < payload.Length; i++)
            {
                payload[i] ^= maskKey[i & 3];
            }
        }

        return new Frame(opcode, fin, masked, length, payload);
    }

    private void Consume(int count) => _start += count;

    private async ValueTask<bool> FillAsync(int count, CancellationToken cancellationToken)
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
            int n;
            try
            {
                n = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException && !cancellationToken.IsCancellationRequested)
            {
                End = StreamEnd.Reset;
                return false;
            }

            if (n == 0)
            {
                End = StreamEnd.Fin;
                return false;
            }

            _end += n;
            BytesRead += n;
        }

        return true;
    }
}
