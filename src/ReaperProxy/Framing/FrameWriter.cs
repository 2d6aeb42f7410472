using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Unicode;

namespace ReaperProxy.Framing;

/// <summary>Writes the few frames the proxy originates: Ping and Close, masked or not.</summary>
internal static class FrameWriter
{
    // Masking keys come from the system's CSPRNG (RFC 6455 §5.3: "a strong source of entropy"), drawn
    // 64 at a time per thread: one call per ping was a measurable part of a ping's cost.
    private const int KeysPerRefill = 64;

    [ThreadStatic]
    private static byte[]? s_threadKeys;

    [ThreadStatic]
    private static int s_threadNextKey;
    /// <summary>
    /// Writes a control frame. Toward a server (the backend) frames are masked with a fresh key
    /// (RFC 6455 §5.3); toward a client they are not.
    /// </summary>
    public static int WriteControl(Span<byte> destination, byte opcode, ReadOnlySpan<byte> payload, bool mask)
    {
        if (payload.Length > FrameHeader.MaxControlPayload)
        {
            throw new ArgumentOutOfRangeException(nameof(payload), "control frames carry at most 125 bytes");
        }

        destination[0] = (byte)(0x80 | opcode);
        destination[1] = (byte)((mask ? 0x80 : 0) | payload.Length);
        var offset = 2;
        if (mask)
        {
            var key = destination.Slice(2, 4);
            NextMaskingKey(key);
            offset = 6;
            var body = destination.Slice(offset, payload.Length);
            payload.CopyTo(body);
            for (var i = 0; i < body.Length; i++)
            {
                body[i] ^= key[i & 3];
            }
        }
        else
        {
            payload.CopyTo(destination[offset..]);
        }

        return offset + payload.Length;
    }

    private static void NextMaskingKey(Span<byte> key)
    {
        var keys = s_threadKeys ??= new byte[KeysPerRefill * 4];
        if (s_threadNextKey == 0)
        {
            RandomNumberGenerator.Fill(keys);
        }

        keys.AsSpan(s_threadNextKey * 4, 4).CopyTo(key);

        // Each key is used once: wiped once taken, redrawn with the whole batch once all are.
        keys.AsSpan(s_threadNextKey * 4, 4).Clear();
        s_threadNextKey = (s_threadNextKey + 1) % KeysPerRefill;
    }

    /// <summary>Writes a Close frame with a status code and a reason (truncated to fit 125 bytes).</summary>
    public static int WriteClose(Span<byte> destination, ushort code, string reason, bool mask)
    {
        Span<byte> payload = stackalloc byte[FrameHeader.MaxControlPayload];
        BinaryPrimitives.WriteUInt16BigEndian(payload, code);
        // §5.5.1: the reason is UTF-8 and must fit in 123 bytes; cut it at a whole character.
        Utf8.FromUtf16(reason, payload[2..], out _, out var reasonBytes, replaceInvalidSequences: true, isFinalBlock: true);
        return WriteControl(destination, WebSocketOpcode.Close, payload[..(2 + reasonBytes)], mask);
    }

    /// <summary>Reads the status code of a Close frame's unmasked payload (1005 when it has none, §7.1.5).</summary>
    public static ushort ReadCloseCode(ReadOnlySpan<byte> payload) =>
        payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(payload) : (ushort)1005;
}
