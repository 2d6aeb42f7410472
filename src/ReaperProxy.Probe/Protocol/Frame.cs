using System.Buffers.Binary;
using System.Text;

namespace ReaperProxy.Probe.Protocol;

/// <summary>
/// One frame as the probe received it. Control frames carry their whole payload (at most 125 bytes,
/// RFC 6455 §5.5); data frames carry only their length: the probe counts data, it never keeps it.
/// </summary>
internal sealed record Frame(Opcode Opcode, bool Fin, bool Masked, long Length, byte[] Payload)
{
    /// <summary>A control frame (Close, Ping, Pong).</summary>
    public bool IsControl => ((byte)Opcode & 0x8) != 0;

    /// <summary>The status code of a Close frame; 1005 ("no status") when it carries none (RFC 6455 §7.1.5).</summary>
    public int CloseCode => Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload) : 1005;

    /// <summary>The reason text of a Close frame.</summary>
    public string CloseReason => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : string.Empty;
}
