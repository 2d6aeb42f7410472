using System.Buffers.Binary;
using System.Text;

namespace ReaperProxy.Fuzz;

/// <summary>One frame of a byte stream as <see cref="WireModel"/> reads it.</summary>
/// <param name="Offset">Where the frame starts in the stream.</param>
/// <param name="Length">Its bytes present in the stream (the whole frame once <see cref="Complete"/>).</param>
/// <param name="HeaderLength">The header's length, or 0 while the header is incomplete.</param>
/// <param name="Fin">The FIN bit.</param>
/// <param name="Opcode">The opcode (§5.2).</param>
/// <param name="Masked">The MASK bit.</param>
/// <param name="PayloadLength">The announced payload length, or -1 while the header is incomplete.</param>
/// <param name="Complete">Whether the whole frame is present.</param>
/// <param name="Payload">A complete control frame's payload, unmasked; empty otherwise.</param>
internal sealed record ModelFrame(int Offset, int Length, int HeaderLength, bool Fin, byte Opcode, bool Masked, long PayloadLength, bool Complete, byte[] Payload)
{
    public bool IsControl => Opcode >= 8;

    public int End => Offset + Length;
}

/// <summary>
/// The harness's own reading of one direction of a WebSocket stream, written from RFC 6455 §5 rather than
/// from the proxy's scanner: the frames, where the first invalid one starts, and the trailing incomplete
/// frame. A frame is judged invalid as soon as the bytes that make it so are present (the reserved opcode
/// or a fragmented control frame at the first byte, an over-long control frame at the second, the top bit
/// of a 64-bit length at the third); the message-sequence rules (§5.4) once its header is whole.
/// RSV bits and the masking bit are the endpoints' to judge (extensions and roles are negotiated end to
/// end), and non-minimal length encodings are accepted: a proxy that keeps frame boundaries needs neither.
/// </summary>
internal sealed class WireModel
{
    private WireModel(List<ModelFrame> frames, int? errorOffset, string? error, bool closed)
    {
        Frames = frames;
        ErrorOffset = errorOffset;
        Error = error;
        Closed = closed;
    }

    /// <summary>Every valid frame in order; the last may be incomplete.</summary>
    public List<ModelFrame> Frames { get; }

    /// <summary>Where the first invalid frame starts, if one is there.</summary>
    public int? ErrorOffset { get; }

    public string? Error { get; }

    /// <summary>Reading stopped after a complete Close (with <c>stopAfterClose</c>).</summary>
    public bool Closed { get; }

    /// <param name="bytes">The stream, from its first byte.</param>
    /// <param name="stopAfterClose">Stop reading after the first complete, valid Close.</param>
    /// <param name="masked">
    /// What §5.1 asks of the sender: true for a client (every frame masked), false for a server (none),
    /// null to read the stream without judging it (what a receiver got, which may hold passed-through bytes).
    /// </param>
    public static WireModel Read(ReadOnlySpan<byte> bytes, bool stopAfterClose, bool? masked = null)
    {
        var frames = new List<ModelFrame>();
        var messageOpen = false;
        var pos = 0;
        while (pos < bytes.Length)
        {
            var rest = bytes[pos..];
            var b0 = rest[0];
            var fin = (b0 & 0x80) != 0;
            var opcode = (byte)(b0 & 0x0F);
            if (opcode is not (0 or 1 or 2 or 8 or 9 or 10))
            {
                return new WireModel(frames, pos, "reserved opcode", false);
            }

            var control = opcode >= 8;
            if (control && !fin)
            {
                return new WireModel(frames, pos, "fragmented control frame", false);
            }

            if (rest.Length < 2)
            {
                frames.Add(new ModelFrame(pos, rest.Length, 0, fin, opcode, false, -1, false, []));
                break;
            }

            var isMasked = (rest[1] & 0x80) != 0;
            var len7 = rest[1] & 0x7F;
            if (control && len7 > 125)
            {
                return new WireModel(frames, pos, "control frame over 125 bytes", false);
            }

            var lengthBytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
            if (lengthBytes == 8 && rest.Length > 2 && (rest[2] & 0x80) != 0)
            {
                return new WireModel(frames, pos, "64-bit length with the top bit set", false);
            }

            var headerLength = 2 + lengthBytes + (isMasked ? 4 : 0);
            if (rest.Length < headerLength)
            {
                frames.Add(new ModelFrame(pos, rest.Length, 0, fin, opcode, isMasked, -1, false, []));
                break;
            }

            if (masked is { } mustMask && isMasked != mustMask)
            {
                return new WireModel(frames, pos, mustMask ? "unmasked client frame" : "masked server frame", false);
            }

            long payloadLength = lengthBytes == 2 ? BinaryPrimitives.ReadUInt16BigEndian(rest[2..])
                : lengthBytes == 8 ? (long)BinaryPrimitives.ReadUInt64BigEndian(rest[2..])
                : len7;
            if (!control)
            {
                if (opcode == 0 ? !messageOpen : messageOpen)
                {
                    return new WireModel(frames, pos, opcode == 0 ? "continuation without a message" : "new message inside an open one", false);
                }

                messageOpen = !fin;
            }

            var available = rest.Length - headerLength;
            if (available < payloadLength)
            {
                frames.Add(new ModelFrame(pos, rest.Length, headerLength, fin, opcode, isMasked, payloadLength, false, []));
                break;
            }

            var length = headerLength + (int)payloadLength;
            var payload = control ? Unmask(rest.Slice(headerLength, (int)payloadLength), isMasked ? rest.Slice(headerLength - 4, 4) : default) : [];
            if (opcode == 8 && CloseProblem(payload) is { } problem)
            {
                // A Close the receiver cannot read is a protocol error (§5.5.1, §7.4.1, §8.1).
                return new WireModel(frames, pos, problem, false);
            }

            frames.Add(new ModelFrame(pos, length, headerLength, fin, opcode, isMasked, payloadLength, true, payload));
            pos += length;
            if (stopAfterClose && opcode == 8)
            {
                return new WireModel(frames, null, null, true);
            }
        }

        return new WireModel(frames, null, null, false);
    }

    // RFC 6455 §5.5.1: a Close body is empty or a 2-byte status code then a UTF-8 reason; §7.4.1/§7.4.2:
    // the codes an endpoint may put in a Close are 1000–1003, 1007–1011 and the later registered
    // 1012–1014, and 3000–4999 for libraries and applications.
    private static string? CloseProblem(byte[] payload)
    {
        if (payload.Length == 0)
        {
            return null;
        }

        if (payload.Length == 1)
        {
            return "close with a 1-byte payload";
        }

        var code = (payload[0] << 8) | payload[1];
        if (!(code is >= 1000 and <= 1003 || code is >= 1007 and <= 1014 || code is >= 3000 and <= 4999))
        {
            return "close code no endpoint may send";
        }

        try
        {
            _ = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(payload, 2, payload.Length - 2);
            return null;
        }
        catch (DecoderFallbackException)
        {
            return "close reason not UTF-8";
        }
    }

    private static byte[] Unmask(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key)
    {
        var bytes = payload.ToArray();
        if (!key.IsEmpty)
        {
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] ^= key[i % 4];
            }
        }

        return bytes;
    }
}
