using System.Buffers.Binary;
using ReaperProxy.Framing;

namespace ReaperProxy.Tests.Framing;

/// <summary>
/// Random but valid frame streams and random chunkings of them, from a seeded <see cref="Random"/> so a
/// failure can be replayed. Lengths favour the edges of the three length encodings (RFC 6455 §5.2).
/// </summary>
internal static class RandomFrames
{
    // The last three need the 16-bit maximum or the 64-bit encoding; DataLength picks them rarely.
    private static readonly int[] s_edgeLengths = [0, 1, 2, 16, 125, 126, 127, 128, 65535, 65536, 65537];

    /// <summary>
    /// A valid stream in one direction: data messages, some fragmented, with control frames between
    /// fragments; masked when <paramref name="masked"/> (client to server). May end inside a message.
    /// </summary>
    public static List<WireFrame> Stream(Random random, bool masked, int maxFrames = 24, bool allowClose = true)
    {
        var frames = new List<WireFrame>();
        var count = random.Next(1, maxFrames + 1);
        var messageOpen = false;
        for (var i = 0; i < count; i++)
        {
            uint? mask = masked ? (uint)random.NextInt64(0, 1L << 32) : null;
            if (random.Next(4) == 0)
            {
                frames.Add(Control(random, mask, allowClose));
                continue;
            }

            var fin = random.Next(3) != 0;
            var opcode = messageOpen ? WebSocketOpcode.Continuation : random.Next(2) == 0 ? WebSocketOpcode.Text : WebSocketOpcode.Binary;

            // RSV1 marks a compressed message (RFC 7692) on its first frame; the proxy must not care.
            var rsv = (byte)(!messageOpen && random.Next(4) == 0 ? 4 : 0);
            var payload = new byte[DataLength(random)];
            random.NextBytes(payload);
            frames.Add(new WireFrame(fin, rsv, opcode, payload, mask));
            messageOpen = !fin;
        }

        return frames;
    }

    /// <summary>A control frame: Ping, Pong or (rarely) a valid Close, 0–125 bytes.</summary>
    public static WireFrame Control(Random random, uint? mask, bool allowClose = true)
    {
        var kind = random.Next(allowClose ? 7 : 6);
        var opcode = kind switch { < 3 => WebSocketOpcode.Ping, < 6 => WebSocketOpcode.Pong, _ => WebSocketOpcode.Close };
        var length = random.Next(3) switch { 0 => 0, 1 => 125, _ => random.Next(0, 126) };
        if (opcode == WebSocketOpcode.Close && length == 1)
        {
            length = 2;
        }

        var payload = new byte[length];
        random.NextBytes(payload);
        if (opcode == WebSocketOpcode.Close && length >= 2)
        {
            // A valid Close (RFC 6455 §5.5.1): a code that may be sent, then a UTF-8 reason (ASCII here).
            ushort[] codes = [1000, 1001, 1003, 1011, 3000, 4999];
            BinaryPrimitives.WriteUInt16BigEndian(payload, codes[random.Next(codes.Length)]);
            for (var i = 2; i < length; i++)
            {
                payload[i] = (byte)('a' + (payload[i] % 26));
            }
        }

        return new WireFrame(true, 0, opcode, payload, mask);
    }

    /// <summary>Chunk lengths that add up to <paramref name="total"/>: byte by byte, small, or large.</summary>
    public static List<int> Chunks(Random random, int total)
    {
        var chunks = new List<int>();
        var style = random.Next(4);
        if (style == 0 && total > 20_000)
        {
            // Byte by byte through a 64 KiB frame tells nothing new and costs seconds.
            style = 3;
        }

        var left = total;
        while (left > 0)
        {
            var size = style switch
            {
                0 => random.Next(1, 4),
                1 => random.Next(1, 200),
                2 => random.Next(1, 70_000),
                _ => random.Next(3) switch { 0 => random.Next(1, 4), 1 => random.Next(1, 200), _ => random.Next(1, 70_000) },
            };
            size = Math.Min(size, left);
            chunks.Add(size);
            left -= size;
        }

        return chunks;
    }

    private static int DataLength(Random random) => random.Next(20) switch
    {
        // Large frames are costly to chop byte by byte; keep them rare.
        0 => s_edgeLengths[random.Next(s_edgeLengths.Length)],
        < 8 => s_edgeLengths[random.Next(s_edgeLengths.Length - 3)],
        < 14 => random.Next(0, 300),
        _ => random.Next(0, 4000),
    };
}
