using System.Net;
using System.Net.Sockets;
using ReaperProxy.Relay;

namespace ReaperProxy.Tests.Relay;

/// <summary>The kernel's acknowledged-bytes counter, read from real loopback sockets.</summary>
public class TcpProgressTests
{
    [Fact]
    public async Task The_counter_moves_as_the_peer_reads_and_stops_while_it_does_not()
    {
        Assert.True(TcpProgress.Supported, "the product runs on Linux, where TCP_INFO is read");
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.ReceiveBufferSize = 4096;
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await sender.ConnectAsync(listener.LocalEndPoint!);
        using var reader = await listener.AcceptAsync();

        Assert.True(TcpProgress.TryReadBytesAcked(sender, out var start));

        // Far more than the reader's buffers hold: the sender's kernel keeps the rest, unacknowledged.
        sender.Blocking = false;
        var block = new byte[64 * 1024];
        var queued = 0;
        for (var i = 0; i < 64; i++)
        {
            try
            {
                queued += sender.Send(block);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.WouldBlock)
            {
                break;
            }
        }

        var acked = await SettledAsync(sender);
        Assert.InRange(acked - start, 1UL, (ulong)queued - 1);

        // Nothing read: the counter stands still.
        await Task.Delay(200);
        Assert.True(TcpProgress.TryReadBytesAcked(sender, out var still));
        Assert.Equal(acked, still);

        // The reader takes some: the counter moves.
        var sink = new byte[16 * 1024];
        var read = 0;
        while (read < 64 * 1024)
        {
            read += await reader.ReceiveAsync(sink, SocketFlags.None);
        }

        Assert.True(await SettledAsync(sender) > acked, "reading must let more bytes be acknowledged");
    }

    [Fact]
    public void A_closed_socket_reports_nothing()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Dispose();

        Assert.False(TcpProgress.TryReadBytesAcked(socket, out _));
        Assert.False(TcpProgress.TryReadBytesAcked(null, out _));
    }

    // The counter once acknowledgements stop arriving (bounded: 2 s).
    private static async Task<ulong> SettledAsync(Socket socket)
    {
        Assert.True(TcpProgress.TryReadBytesAcked(socket, out var last));
        for (var i = 0; i < 40; i++)
        {
            await Task.Delay(50);
            Assert.True(TcpProgress.TryReadBytesAcked(socket, out var now));
            if (now == last)
            {
                return now;
            }

            last = now;
        }

        return last;
    }
}
