using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>One TCP socket as the kernel lists it in /proc/net/tcp{,6}.</summary>
/// <param name="Local">Its local address (IPv4-mapped IPv6 addresses are shown as IPv4).</param>
/// <param name="Remote">The peer's address.</param>
/// <param name="State">The TCP state.</param>
/// <param name="SendQueue">Bytes not yet acknowledged by the peer (tx_queue): what the kernel still holds for it.</param>
/// <param name="ReceiveQueue">Bytes received and not yet read by the application (rx_queue).</param>
/// <param name="Inode">The socket's inode (0 for an orphan the kernel keeps after the application closed it).</param>
internal sealed record TcpSocket(IPEndPoint Local, IPEndPoint Remote, TcpState State, long SendQueue, long ReceiveQueue, long Inode)
{
    public override string ToString() => $"{Local} -> {Remote} {State} send-q {SendQueue} recv-q {ReceiveQueue} inode {Inode}";
}

/// <summary>
/// The kernel's TCP socket table (Linux /proc/net/tcp and /proc/net/tcp6, this network namespace), the
/// same data <c>ss -tn</c> shows, with the queues: whether a socket toward a peer is still there, in which
/// state, and how many bytes the kernel still holds for it.
/// </summary>
internal static class TcpTable
{
    public static bool Supported => OperatingSystem.IsLinux() && File.Exists("/proc/net/tcp");

    /// <summary>Every TCP socket now.</summary>
    public static IReadOnlyList<TcpSocket> Read()
    {
        var sockets = new List<TcpSocket>();
        foreach (var file in (string[])["/proc/net/tcp", "/proc/net/tcp6"])
        {
            if (!File.Exists(file))
            {
                continue;
            }

            foreach (var line in File.ReadLines(file).Skip(1))
            {
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 10)
                {
                    continue;
                }

                var queues = f[4].Split(':');
                sockets.Add(new TcpSocket(
                    Endpoint(f[1]),
                    Endpoint(f[2]),
                    State(int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture)),
                    long.Parse(queues[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    long.Parse(queues[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    long.Parse(f[9], CultureInfo.InvariantCulture)));
            }
        }

        return sockets;
    }

    /// <summary>The sockets whose peer is <paramref name="remotePort"/> (on any address).</summary>
    public static IReadOnlyList<TcpSocket> ToPort(int remotePort) => [.. Read().Where(s => s.Remote.Port == remotePort)];

    /// <summary>
    /// Polls the table (every 50 ms, up to <paramref name="timeout"/>) until <paramref name="condition"/>
    /// holds; returns the last table read and whether it held.
    /// </summary>
    public static async Task<(bool Held, IReadOnlyList<TcpSocket> Table)> UntilAsync(Func<IReadOnlyList<TcpSocket>, bool> condition, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var table = Read();
            if (condition(table))
            {
                return (true, table);
            }

            if (clock.Elapsed > timeout)
            {
                return (false, table);
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Polls until no socket matches <paramref name="match"/>; returns what still matches at the end (empty once gone).</summary>
    public static async Task<IReadOnlyList<TcpSocket>> UntilGoneAsync(Func<TcpSocket, bool> match, TimeSpan timeout) =>
        [.. (await UntilAsync(table => !table.Any(match), timeout)).Table.Where(match)];

    /// <summary>The sockets process <paramref name="pid"/> holds open (its /proc/PID/fd), by inode.</summary>
    public static IReadOnlyList<TcpSocket> HeldBy(int pid)
    {
        var inodes = new HashSet<long>();
        foreach (var fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
        {
            try
            {
                // "socket:[123456]"
                if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal))
                {
                    inodes.Add(long.Parse(target.AsSpan(8, target.Length - 9), CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
                // Closed while listing.
            }
        }

        return [.. Read().Where(s => s.Inode != 0 && inodes.Contains(s.Inode))];
    }

    private static IPEndPoint Endpoint(string hex)
    {
        // "0100007F:1F90" (IPv4) or 32 hex digits (IPv6): the address as the kernel's 32-bit words in host
        // (little-endian) order, then the port in big-endian hex.
        var colon = hex.IndexOf(':');
        var address = hex[..colon];
        var bytes = new byte[address.Length / 2];
        for (var word = 0; word < bytes.Length / 4; word++)
        {
            for (var i = 0; i < 4; i++)
            {
                bytes[word * 4 + i] = byte.Parse(address.AsSpan(word * 8 + (3 - i) * 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
        }

        var ip = new IPAddress(bytes);
        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }

        return new IPEndPoint(ip, int.Parse(hex.AsSpan(colon + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    // include/net/tcp_states.h
    private static TcpState State(int code) => code switch
    {
        1 => TcpState.Established,
        2 => TcpState.SynSent,
        3 => TcpState.SynReceived,
        4 => TcpState.FinWait1,
        5 => TcpState.FinWait2,
        6 => TcpState.TimeWait,
        7 => TcpState.Closed,
        8 => TcpState.CloseWait,
        9 => TcpState.LastAck,
        10 => TcpState.Listen,
        11 => TcpState.Closing,
        _ => TcpState.Unknown,
    };
}
