using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace ReaperProxy.Relay;

/// <summary>
/// Holds the socket of one leg once it is known. The client's comes from Kestrel at the upgrade; the
/// backend's is filled in by the proxy's connect callback when the upgrade request is written to it.
/// </summary>
internal sealed class SocketSlot
{
    private Socket? _socket;

    public SocketSlot(Socket? socket = null) => _socket = socket;

    public Socket? Socket
    {
        get => Volatile.Read(ref _socket);
        set => Volatile.Write(ref _socket, value);
    }
}

/// <summary>
/// The kernel's view of how much of what the proxy sent a peer has been taken by it: Linux
/// <c>getsockopt(TCP_INFO)</c>, field <c>tcpi_bytes_acked</c> (RFC 4898 tcpEStatsAppHCThruOctetsAcked,
/// Linux 4.1+). A peer's TCP stack acknowledges new data only while there is room in its receive
/// buffer, and that room comes back only as its application reads; so a moving count means the peer is
/// consuming, byte by byte, however long one write toward it lasts. A frozen process or a dead link
/// stops it within one receive buffer.
/// </summary>
internal static class TcpProgress
{
    private const int SolTcp = 6;
    private const int TcpInfo = 11;

    // struct tcp_info (include/uapi/linux/tcp.h): tcpi_bytes_acked is the __u64 at offset 120.
    private const int BytesAckedOffset = 120;
    private const int InfoLength = 232;

    /// <summary>Whether this platform exposes the counter.</summary>
    public static bool Supported { get; } = OperatingSystem.IsLinux();

    /// <summary>Reads <c>tcpi_bytes_acked</c>; false when the socket is gone or the kernel does not report it.</summary>
    public static bool TryReadBytesAcked(Socket? socket, out ulong acked)
    {
        acked = 0;
        if (!Supported || socket is null)
        {
            return false;
        }

        Span<byte> info = stackalloc byte[InfoLength];
        try
        {
            var length = socket.GetRawSocketOption(SolTcp, TcpInfo, info);
            if (length < BytesAckedOffset + sizeof(ulong))
            {
                return false;
            }

            acked = MemoryMarshal.Read<ulong>(info[BytesAckedOffset..]);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return false;
        }
    }
}
