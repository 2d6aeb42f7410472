using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ReaperProxy.Probe.Protocol;

/// <summary>
/// Writes client frames: always masked with a fresh random key, as RFC 6455 §5.3 requires of a client.
/// One write at a time (a lock), so a pong can be sent while another task sends data, never inside it.
/// </summary>
internal sealed class FrameWriter(Stream stream)
{
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>Client frame bytes: header, masking key, masked payload (RFC 6455 §5.2).</summary>
    public static byte[] Encode(Opcode opcode, ReadOnlySpan<byte> payload, bool fin = true)
    {
        var frame = new byte[HeaderLength(payload.Length) + payload.Length];
        var offset = WriteHeader(frame, opcode, payload.Length, fin);
        var key = frame.AsSpan(offset - 4, 4);
        for (var i = 0; i < payload.Length; i++)
        {
            frame[offset + i] = (byte)(payload[i] ^ key[i & 3]);
        }

        return frame;
    }

    /// <summary>
    /// Only the header (with its masking key) of a frame promising <paramref name="payloadLength"/> bytes,
    /// followed by the first <paramref name="sentLength"/> of them: a frame that stops halfway.
    /// </summary>
    public static byte[] EncodeTruncated(Opcode opcode, int payloadLength, int sentLength)
    {
        var frame = new byte[HeaderLength(payloadLength) + sentLength];
        var offset = WriteHeader(frame, opcode, payloadLength, fin: true);
        var key = frame.AsSpan(offset - 4, 4);
        for (var i = 0; i < sentLength; i++)
        {
            frame[offset + i] = (byte)('x' ^ key[i & 3]);
        }

        return frame;
    }

    /// <summary>A Close frame's payload: the code, then the reason in UTF-8 (RFC 6455 §5.5.1).</summary>
    public static byte[] ClosePayload(int code, string reason)
    {
        var payload = new byte[2 + Encoding.UTF8.GetByteCount(reason)];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)code);
        Encoding.UTF8.GetBytes(reason, payload.AsSpan(2));
        return payload;
    }

    /// <summary>Sends one whole frame.</summary>
    public Task SendAsync(Opcode opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) =>
        SendRawAsync(Encode(opcode, payload.Span), cancellationToken);

    /// <summary>Sends bytes as they are (already framed), under the write lock.</summary>
    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            await stream.WriteAsync(bytes, cancellationToken);
            await stream.FlushAsync(cancellationToken);
        }
        finally
        {
            _lock.Release();
        }
    }

    private static int HeaderLength(int payloadLength) => 2 + (payloadLength <= 125 ? 0 : payloadLength <= ushort.MaxValue ? 2 : 8) + 4;

    private static int WriteHeader(Span<byte> frame, Opcode opcode, int payloadLength, bool fin)
    {
        frame[0] = (byte)((fin ? 0x80 : 0) | (byte)opcode);
        int offset;
        if (payloadLength <= 125)
        {
            frame[1] = (byte)(0x80 | payloadLength);
            offset = 2;
        }
        else if (payloadLength <= ushort.MaxValue)
        {
            frame[1] = 0x80 | 126;
            BinaryPrimitives.WriteUInt16BigEndian(frame[2..], (ushort)payloadLength);
            offset = 4;
        }
        else
        {
            frame[1] = 0x80 | 127;
            BinaryPrimitives.WriteUInt64BigEndian(frame[2..], (ulong)payloadLength);
            offset = 10;
        }

        RandomNumberGenerator.Fill(frame.Slice(offset, 4));
        return offset + 4;
    }
}
