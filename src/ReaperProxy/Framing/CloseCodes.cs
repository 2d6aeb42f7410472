using System.Buffers.Binary;
using System.Text.Unicode;

namespace ReaperProxy.Framing;

/// <summary>RFC 6455 §7.4 status codes, and which of them an endpoint may put on the wire.</summary>
internal static class CloseCodes
{
    public const ushort Normal = 1000;
    public const ushort GoingAway = 1001;
    public const ushort ProtocolError = 1002;

    /// <summary>Stands for a Close frame without a payload (not a code on the wire).</summary>
    public const ushort Empty = 0;

    /// <summary>"No status code" (§7.4.1): never sent; a Close without a payload is sent instead.</summary>
    public const ushort NoStatus = 1005;

    /// <summary>
    /// Whether a code may be sent in a Close frame: 1000–1003 and 1007–1011 (§7.4.1), 1012–1014 (registered
    /// with IANA since), 3000–4999 (libraries, frameworks and applications, §7.4.2). 1004 is reserved,
    /// 1005, 1006 and 1015 are for reporting only and "MUST NOT be set as a status code in a Close
    /// control frame by an endpoint", everything else is unassigned.
    /// </summary>
    public static bool IsSendable(ushort code) => code is (>= 1000 and <= 1003) or (>= 1007 and <= 1014) or (>= 3000 and <= 4999);

    /// <summary>
    /// The code the proxy answers a Close with when it must answer for the other side: the initiator's
    /// own code where it may be sent, nothing (an empty Close) for an empty Close, and 1002 (protocol
    /// error) for a code no endpoint may send (such a Close is refused by <see cref="Validate"/> before it
    /// gets here; the rule stays so that nothing the proxy writes can carry one).
    /// </summary>
    /// <returns>The code to send, or <see cref="NoStatus"/> for an empty Close.</returns>
    public static ushort Echo(ushort received) =>
        received == Empty ? NoStatus : IsSendable(received) ? received : ProtocolError;

    /// <summary>
    /// Judges a whole Close frame (<paramref name="frame"/>, header included) as a receiving endpoint must:
    /// empty, or a 2-byte code that may be sent followed by a UTF-8 reason (RFC 6455 §5.5.1, §7.4, §8.1).
    /// The proxy reads Close frames (it bounds the closing handshake and may answer one for the other
    /// side), so one it cannot read is a protocol error rather than something to pass on.
    /// </summary>
    public static FrameError Validate(FrameHeader header, ReadOnlySpan<byte> frame)
    {
        if (header.PayloadLength == 0)
        {
            return FrameError.None;
        }

        if (header.PayloadLength == 1)
        {
            return FrameError.CloseOneBytePayload;
        }

        Span<byte> payload = stackalloc byte[FrameHeader.MaxControlPayload];
        var length = header.CopyPayload(frame, payload);
        if (!IsSendable(BinaryPrimitives.ReadUInt16BigEndian(payload)))
        {
            return FrameError.InvalidCloseCode;
        }

        return Utf8.IsValid(payload[2..length]) ? FrameError.None : FrameError.InvalidCloseReason;
    }
}
