using System.Buffers.Binary;

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

    public static WireModel Read(ReadOnlySpan<byte> bytes, bool stopAfterClose)
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

            var masked = (rest[1] & 0x80) != 0;
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

            var headerLength = 2 + lengthBytes + (masked ? 4 : 0);
            if (rest.Length < headerLength)
            {
                frames.Add(new ModelFrame(pos, rest.Length, 0, fin, opcode, masked, -1, false, []));
                break;
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
                frames.Add(new ModelFrame(pos, rest.Length, headerLength, fin, opcode, masked, payloadLength, false, []));
                break;
            }

            var length = headerLength + (int)payloadLength;
            var payload = control ? Unmask(rest.Slice(headerLength, (int)payloadLength), masked ? rest.Slice(headerLength - 4, 4) : default) : [];
            frames.Add(new ModelFrame(pos, length, headerLength, fin, opcode, masked, payloadLength, true, payload));
            pos += length;
            if (stopAfterClose && opcode == 8)
            {
                return new WireModel(frames, null, null, true);
            }
        }

        return new WireModel(frames, null, null, false);
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
