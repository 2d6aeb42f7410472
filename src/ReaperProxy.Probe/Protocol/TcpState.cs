using System.Net.Sockets;

namespace ReaperProxy.Probe.Protocol;

/// <summary>
/// Whether the server has ended a TCP connection, seen without reading from it: a check that must not
/// read (client-close-abandoned) cannot learn about a FIN the usual way, by a read returning 0.
/// On Linux the kernel says it (TCP_INFO's tcpi_state: CLOSE_WAIT after the peer's FIN, CLOSE after a
/// reset); elsewhere only when no unread data is pending (poll readable with nothing available).
/// </summary>
internal static class TcpState
{
    private const int IpProtoTcp = 6;
    private const int TcpInfo = 11;
    private const byte Established = 1;
    private const byte Close = 7;
    private const byte CloseWait = 8;

    /// <summary>Whether this platform can watch the TCP state without reading (Linux).</summary>
    public static bool WatchesKernelState => OperatingSystem.IsLinux();

    /// <summary>
    /// <see cref="StreamEnd.Fin"/> or <see cref="StreamEnd.Reset"/> once the peer ended the connection,
    /// <see cref="StreamEnd.None"/> while it is open (or, off Linux, while unread data hides the end).
    /// </summary>
    public static StreamEnd Peek(Socket socket)
    {
        try
        {
            if (WatchesKernelState)
            {
                Span<byte> info = stackalloc byte[8];
                socket.GetRawSocketOption(IpProtoTcp, TcpInfo, info);
                return info[0] switch
                {
                    Established => StreamEnd.None,
                    CloseWait => StreamEnd.Fin,
                    Close => StreamEnd.Reset,
                    _ => StreamEnd.Fin,
                };
            }

            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0 ? StreamEnd.Fin : StreamEnd.None;
        }
        catch (SocketException)
        {
            return StreamEnd.Reset;
        }
        catch (ObjectDisposedException)
        {
            return StreamEnd.Reset;
        }
    }
}
