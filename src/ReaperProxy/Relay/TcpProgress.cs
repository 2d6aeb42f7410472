using System.Collections.Concurrent;
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
    private SocketSet? _shared;

    public SocketSlot(Socket? socket = null) => _socket = socket;

    /// <summary>The leg's own socket.</summary>
    public Socket? Socket
    {
        get => Volatile.Read(ref _socket);
        set => Volatile.Write(ref _socket, value);
    }

    /// <summary>
    /// When the leg has no socket of its own: the live sockets of the HTTP/2 connections to its backend
    /// that its stream may share (set once the destination is known). The leg then counts as consuming
    /// while any of them does — a frozen backend stops them all.
    /// </summary>
    public SocketSet? Shared
    {
        get => Volatile.Read(ref _shared);
        set => Volatile.Write(ref _shared, value);
    }

    /// <summary><c>kernel</c> (own socket), <c>shared</c> (its HTTP/2 connections' sockets) or null (none known).</summary>
    public string? Source => !TcpProgress.Supported ? null : Socket is not null ? "kernel" : Shared is { IsEmpty: false } ? "shared" : null;

    /// <summary>
    /// Makes the leg's own connection end with a reset (SO_LINGER on, timeout 0) whenever it is closed, by
    /// whoever closes it (Kestrel's transport, SocketsHttpHandler). For a peer that is gone: a plain close
    /// would queue a FIN behind everything still unsent toward it, and the kernel would keep the socket in
    /// FIN-WAIT-1, with up to megabytes of send buffer, probing a zero window for as long as a frozen
    /// peer's kernel answers. A socket some other stream shares (HTTP/2) is left alone.
    /// </summary>
    public void ResetOnClose()
    {
        if (Socket is not { } own || Shared?.Contains(own) == true)
        {
            return;
        }

        try
        {
            own.LingerState = new LingerOption(enable: true, seconds: 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed: nothing is left to reset.
        }
    }

    /// <summary>The acknowledged bytes of the own socket, else the sum over the shared ones.</summary>
    public bool TryReadBytesAcked(out ulong acked)
    {
        if (Socket is { } own)
        {
            return TcpProgress.TryReadBytesAcked(own, out acked);
        }

        acked = 0;
        var any = false;
        if (Shared is { } shared)
        {
            foreach (var socket in shared.Sockets)
            {
                if (TcpProgress.TryReadBytesAcked(socket, out var one))
                {
                    acked += one;
                    any = true;
                }
            }
        }

        return any;
    }
}

/// <summary>The live sockets of the HTTP/2 connections to one backend endpoint.</summary>
internal sealed class SocketSet
{
    private readonly ConcurrentDictionary<Socket, byte> _sockets = new();

    public bool IsEmpty => _sockets.IsEmpty;

    public bool Contains(Socket socket) => _sockets.ContainsKey(socket);

    /// <summary>A moment's view, enumerated without locks.</summary>
    public IEnumerable<Socket> Sockets
    {
        get
        {
            foreach (var (socket, _) in _sockets)
            {
                yield return socket;
            }
        }
    }

    public void Add(Socket socket) => _sockets.TryAdd(socket, 0);

    public void Remove(Socket socket) => _sockets.TryRemove(socket, out _);
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
