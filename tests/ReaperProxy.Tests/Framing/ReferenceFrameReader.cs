using System.Buffers.Binary;

namespace ReaperProxy.Tests.Framing;

/// <summary>
/// A deliberately simple, whole-buffer RFC 6455 reader written from the RFC rather than from the code
/// under test, used to check what the proxy's parser lets through. It throws on anything a strict
/// endpoint would refuse: a truncated frame, a reserved opcode, a fragmented or over-long control frame,
/// a 64-bit length with the top bit set, a continuation with no message, a new message inside an open one.
/// </summary>
internal static class ReferenceFrameReader
{
    public static List<WireFrame> ReadAll(ReadOnlySpan<byte> bytes) => ReadAll(bytes, out _);

    public static List<WireFrame> ReadAll(ReadOnlySpan<byte> bytes, out bool messageOpen)
    {
        var frames = new List<WireFrame>();
        messageOpen = false;
        var pos = 0;
        while (pos < bytes.Length)
        {
            var at = pos;
            Require(bytes.Length - pos >= 2, at, "truncated header");
            var b0 = bytes[pos];
            var b1 = bytes[pos + 1];
            pos += 2;
            var fin = (b0 & 0x80) != 0;
            var rsv = (byte)((b0 >> 4) & 0x7);
            var opcode = (byte)(b0 & 0xF);
            Require(opcode is 0 or 1 or 2 or 8 or 9 or 10, at, $"reserved opcode {opcode}");
            var control = opcode >= 8;
            long length = b1 & 0x7F;
            if (length == 126)
            {
                Require(bytes.Length - pos >= 2, at, "truncated 16-bit length");
                length = BinaryPrimitives.ReadUInt16BigEndian(bytes[pos..]);
                pos += 2;
            }
            else if (length == 127)
            {
                Require(bytes.Length - pos >= 8, at, "truncated 64-bit length");
                var raw = BinaryPrimitives.ReadUInt64BigEndian(bytes[pos..]);
                Require(raw >> 63 == 0, at, "64-bit length with the top bit set");
                length = (long)raw;
                pos += 8;
            }

            if (control)
            {
                Require(fin, at, "fragmented control frame");
                Require(length <= 125, at, "control frame over 125 bytes");
            }
            else
            {
                Require(opcode == 0 ? messageOpen : !messageOpen, at, opcode == 0 ? "continuation without a message" : "new message inside an open one");
                messageOpen = !fin;
            }

            uint? mask = null;
            if ((b1 & 0x80) != 0)
            {
                Require(bytes.Length - pos >= 4, at, "truncated masking key");
                mask = BinaryPrimitives.ReadUInt32BigEndian(bytes[pos..]);
                pos += 4;
            }

            Require(bytes.Length - pos >= length, at, $"truncated payload ({length} announced, {bytes.Length - pos} present)");
            var payload = bytes.Slice(pos, (int)length).ToArray();
            pos += (int)length;
            if (mask is { } key)
            {
                for (var i = 0; i < payload.Length; i++)
                {
                    payload[i] ^= (byte)(key >> (8 * (3 - (i & 3))));
                }
            }

            frames.Add(new WireFrame(fin, rsv, opcode, payload, mask));
        }

        return frames;
    }

    private static void Require(bool condition, int offset, string problem)
    {
        if (!condition)
        {
            throw new InvalidDataException($"invalid frame at offset {offset}: {problem}");
        }
    }
}
