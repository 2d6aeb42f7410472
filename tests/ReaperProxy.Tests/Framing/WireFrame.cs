using System.Buffers.Binary;
using System.Text;
using ReaperProxy.Framing;

namespace ReaperProxy.Tests.Framing;

/// <summary>
/// A WebSocket frame as a test writes it: the fields and the <em>unmasked</em> payload. Encodes itself
/// with the shortest length encoding (RFC 6455 §5.2 "the minimal number of bytes MUST be used") and,
/// when <see cref="MaskKey"/> is set, masks the payload (§5.3). Independent of the code under test.
/// </summary>
internal sealed class WireFrame
{
    public WireFrame(bool fin, byte rsv, byte opcode, byte[] payload, uint? maskKey = null)
    {
        Fin = fin;
        Rsv = rsv;
        Opcode = opcode;
        Payload = payload;
        MaskKey = maskKey;
    }

    public bool Fin { get; }

    /// <summary>RSV1..RSV3 as a 3-bit number (RSV1 = 4).</summary>
    public byte Rsv { get; }

    public byte Opcode { get; }

    /// <summary>The payload as the application sees it (unmasked).</summary>
    public byte[] Payload { get; }

    /// <summary>The masking key, or null for an unmasked (server-to-client) frame.</summary>
    public uint? MaskKey { get; }

    public bool IsControl => (Opcode & 0x8) != 0;

    public static WireFrame Text(string text, bool fin = true, uint? mask = null) => new(fin, 0, WebSocketOpcode.Text, Encoding.UTF8.GetBytes(text), mask);

    public static WireFrame Binary(int length, bool fin = true, uint? mask = null, byte fill = 0x5A, byte rsv = 0) =>
        new(fin, rsv, WebSocketOpcode.Binary, Filled(length, fill), mask);

    public static WireFrame Continuation(int length, bool fin, uint? mask = null, byte fill = 0x3C) =>
        new(fin, 0, WebSocketOpcode.Continuation, Filled(length, fill), mask);

    public static WireFrame Ping(byte[] payload, uint? mask = null) => new(true, 0, WebSocketOpcode.Ping, payload, mask);

    public static WireFrame Pong(byte[] payload, uint? mask = null) => new(true, 0, WebSocketOpcode.Pong, payload, mask);

    public static WireFrame Close(ushort code, string reason = "", uint? mask = null)
    {
        var reasonBytes = Encoding.UTF8.GetBytes(reason);
        var payload = new byte[2 + reasonBytes.Length];
        BinaryPrimitives.WriteUInt16BigEndian(payload, code);
        reasonBytes.CopyTo(payload, 2);
        return new WireFrame(true, 0, WebSocketOpcode.Close, payload, mask);
    }

    /// <summary>Just a header, for lengths too large to build a payload for.</summary>
    public static byte[] Header(bool fin, byte rsv, byte opcode, long payloadLength, uint? maskKey)
    {
        var buffer = new byte[FrameHeader.MaxHeaderLength];
        var length = WriteHeader(buffer, fin, rsv, opcode, payloadLength, maskKey);
        return buffer[..length];
    }

    /// <summary>The frame's bytes on the wire.</summary>
    public byte[] ToBytes()
    {
        var buffer = new byte[FrameHeader.MaxHeaderLength + Payload.Length];
        var headerLength = WriteHeader(buffer, Fin, Rsv, Opcode, Payload.Length, MaskKey);
        Payload.CopyTo(buffer, headerLength);
        if (MaskKey is { } key)
        {
            Span<byte> keyBytes = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(keyBytes, key);
            var body = buffer.AsSpan(headerLength, Payload.Length);
            for (var i = 0; i < body.Length; i++)
            {
                body[i] ^= keyBytes[i & 3];
            }
        }

        return buffer[..(headerLength + Payload.Length)];
    }

    public static byte[] Concat(IEnumerable<WireFrame> frames) => frames.SelectMany(f => f.ToBytes()).ToArray();

    public override string ToString() =>
        $"{(Fin ? "FIN " : "")}rsv={Rsv} op={Opcode} len={Payload.Length}{(MaskKey is { } k ? $" mask={k:x8}" : "")}";

    private static int WriteHeader(Span<byte> buffer, bool fin, byte rsv, byte opcode, long payloadLength, uint? maskKey)
    {
        buffer[0] = (byte)((fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (opcode & 0x0F));
        var maskBit = maskKey is null ? 0 : 0x80;
        int offset;
        if (payloadLength <= 125)
        {
            buffer[1] = (byte)(maskBit | (int)payloadLength);
            offset = 2;
        }
        else if (payloadLength <= ushort.MaxValue)
        {
            buffer[1] = (byte)(maskBit | 126);
            BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], (ushort)payloadLength);
            offset = 4;
        }
        else
        {
            buffer[1] = (byte)(maskBit | 127);
            BinaryPrimitives.WriteUInt64BigEndian(buffer[2..], (ulong)payloadLength);
            offset = 10;
        }

        if (maskKey is { } key)
        {
            BinaryPrimitives.WriteUInt32BigEndian(buffer[offset..], key);
            offset += 4;
        }

        return offset;
    }

    private static byte[] Filled(int length, byte fill)
    {
        var payload = new byte[length];
        for (var i = 0; i < payload.Length; i++)
        {
            // A pattern rather than a constant, so a shifted or duplicated byte shows.
            payload[i] = (byte)(fill + i);
        }

        return payload;
    }
}
