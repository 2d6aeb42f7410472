using System.Buffers.Binary;

namespace ReaperProxy.Framing;

/// <summary>
/// An RFC 6455 frame header (section 5.2), parsed from the wire without touching the payload.
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
/// </summary>
internal readonly record struct FrameHeader(bool Fin, byte Rsv, byte Opcode, bool Masked, uint MaskKey, long PayloadLength, int HeaderLength)
{
    /// <summary>The largest header: 2 + 8 (64-bit length) + 4 (mask).</summary>
    public const int MaxHeaderLength = 14;

    /// <summary>RFC 6455 §5.5: control frames carry at most 125 bytes of payload.</summary>
    public const int MaxControlPayload = 125;

    /// <summary>The largest control frame on the wire.</summary>
    public const int MaxControlFrame = MaxHeaderLength + MaxControlPayload;

    /// <summary>Whether this is a control frame (Close, Ping, Pong).</summary>
    public bool IsControl => (Opcode & 0x8) != 0;

    /// <summary>The whole frame's length on the wire.</summary>
    public long FrameLength => HeaderLength + PayloadLength;

    /// <summary>
    /// Parses a header from the start of <paramref name="data"/>. Returns <see cref="HeaderStatus.NeedMore"/>
    /// when <paramref name="data"/> ends inside the header, and reports an invalid header as soon as the
    /// bytes that make it invalid are present (RFC 6455 §5.2, §5.5).
    /// </summary>
    public static HeaderStatus TryParse(ReadOnlySpan<byte> data, out FrameHeader header, out FrameError error)
    {
        header = default;
        error = FrameError.None;
        if (data.IsEmpty)
        {
            return HeaderStatus.NeedMore;
        }

        var b0 = data[0];
        var opcode = (byte)(b0 & 0x0F);
        var fin = (b0 & 0x80) != 0;
        if (!WebSocketOpcode.IsDefined(opcode))
        {
            error = FrameError.ReservedOpcode;
            return HeaderStatus.Invalid;
        }

        var isControl = (opcode & 0x8) != 0;
        if (isControl && !fin)
        {
            error = FrameError.FragmentedControlFrame;
            return HeaderStatus.Invalid;
        }

        if (data.Length < 2)
        {
            return HeaderStatus.NeedMore;
        }

        var b1 = data[1];
        var masked = (b1 & 0x80) != 0;
        var len7 = b1 & 0x7F;
        if (isControl && len7 > MaxControlPayload)
        {
            error = FrameError.ControlFrameTooLong;
            return HeaderStatus.Invalid;
        }

        var lengthBytes = len7 switch { 126 => 2, 127 => 8, _ => 0 };
        var headerLength = 2 + lengthBytes + (masked ? 4 : 0);
        if (data.Length < headerLength)
        {
            // The top bit of a 64-bit length can be judged as soon as its byte is here.
            if (lengthBytes == 8 && data.Length > 2 && (data[2] & 0x80) != 0)
            {
                error = FrameError.LengthTopBitSet;
                return HeaderStatus.Invalid;
            }

            return HeaderStatus.NeedMore;
        }

        long payloadLength = lengthBytes switch
        {
            2 => BinaryPrimitives.ReadUInt16BigEndian(data.Slice(2, 2)),
            8 => (long)BinaryPrimitives.ReadUInt64BigEndian(data.Slice(2, 8)),
            _ => len7,
        };
        if (payloadLength < 0)
        {
            // §5.2: "the most significant bit MUST be 0".
            error = FrameError.LengthTopBitSet;
            return HeaderStatus.Invalid;
        }

        var maskKey = masked ? BinaryPrimitives.ReadUInt32BigEndian(data.Slice(2 + lengthBytes, 4)) : 0u;
        header = new FrameHeader(fin, (byte)((b0 >> 4) & 0x7), opcode, masked, maskKey, payloadLength, headerLength);
        return HeaderStatus.Complete;
    }

    /// <summary>Copies the payload of a complete control frame, unmasked, into <paramref name="destination"/>.</summary>
    public int CopyPayload(ReadOnlySpan<byte> frame, Span<byte> destination)
    {
        var length = (int)PayloadLength;
        var payload = frame.Slice(HeaderLength, length);
        payload.CopyTo(destination);
        if (Masked)
        {
            Span<byte> key = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(key, MaskKey);
            for (var i = 0; i < length; i++)
            {
                destination[i] ^= key[i & 3];
            }
        }

        return length;
    }
}

/// <summary>The outcome of <see cref="FrameHeader.TryParse"/>.</summary>
internal enum HeaderStatus
{
    /// <summary>The data ends inside the header.</summary>
    NeedMore,

    /// <summary>A whole, valid header.</summary>
    Complete,

    /// <summary>The header breaks RFC 6455; see the <see cref="FrameError"/>.</summary>
    Invalid,
}

/// <summary>Why a frame was refused.</summary>
internal enum FrameError
{
    /// <summary>No error.</summary>
    None,

    /// <summary>Opcodes 0x3–0x7 and 0xB–0xF are reserved (§5.2).</summary>
    ReservedOpcode,

    /// <summary>Control frames must not be fragmented (§5.5).</summary>
    FragmentedControlFrame,

    /// <summary>Control frames carry at most 125 bytes (§5.5).</summary>
    ControlFrameTooLong,

    /// <summary>The most significant bit of a 64-bit length must be 0 (§5.2).</summary>
    LengthTopBitSet,

    /// <summary>A continuation frame with no message to continue (§5.4).</summary>
    UnexpectedContinuation,

    /// <summary>A new data message while a fragmented one is still open (§5.4).</summary>
    ExpectedContinuation,

    /// <summary>A frame from the client without a mask (§5.1: the server must fail the connection).</summary>
    UnmaskedClientFrame,

    /// <summary>A masked frame from the server (§5.1: the client must fail the connection).</summary>
    MaskedServerFrame,

    /// <summary>A Close whose payload is 1 byte: a body must start with a 2-byte status code (§5.5.1).</summary>
    CloseOneBytePayload,

    /// <summary>A Close with a status code no endpoint may send (§7.4: 0–999, 1004–1006, 1015–2999 unassigned, 5000+).</summary>
    InvalidCloseCode,

    /// <summary>A Close whose reason is not valid UTF-8 (§5.5.1, §8.1).</summary>
    InvalidCloseReason,
}

/// <summary>RFC 6455 §11.8 opcodes.</summary>
internal static class WebSocketOpcode
{
    public const byte Continuation = 0x0;
    public const byte Text = 0x1;
    public const byte Binary = 0x2;
    public const byte Close = 0x8;
    public const byte Ping = 0x9;
    public const byte Pong = 0xA;

    public static bool IsDefined(byte opcode) => opcode is <= Binary or (>= Close and <= Pong);

    /// <summary>A readable name for logs.</summary>
    public static string Describe(FrameError error) => error switch
    {
        FrameError.ReservedOpcode => "reserved opcode",
        FrameError.FragmentedControlFrame => "fragmented control frame",
        FrameError.ControlFrameTooLong => "control frame payload over 125 bytes",
        FrameError.LengthTopBitSet => "64-bit payload length with the top bit set",
        FrameError.UnexpectedContinuation => "continuation frame without a message to continue",
        FrameError.ExpectedContinuation => "new message while a fragmented message is open",
        FrameError.UnmaskedClientFrame => "unmasked frame from the client",
        FrameError.MaskedServerFrame => "masked frame from the backend",
        FrameError.CloseOneBytePayload => "Close frame with a 1-byte payload",
        FrameError.InvalidCloseCode => "Close frame with an invalid status code",
        FrameError.InvalidCloseReason => "Close frame whose reason is not valid UTF-8",
        _ => "none",
    };
}
