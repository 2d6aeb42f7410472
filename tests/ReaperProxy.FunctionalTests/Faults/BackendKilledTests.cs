using System.Diagnostics;
using System.Net.NetworkInformation;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// The backend process is killed (SIGKILL) mid-conversation: the kernel ends its connections — with a FIN
/// when nothing it received was unread, with a RST when bytes were still waiting in its receive buffer. The
/// client gets a Close at once, not after a heartbeat deadline: the heartbeat here is 10 s / 10 s, so a
/// Close within 2 s can only come from the proxy seeing the backend's connection end.
/// </summary>
public sealed class BackendKilledTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan s_atOnce = TimeSpan.FromSeconds(2);
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-faults-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_backend_process_killed_mid_conversation_gets_the_client_a_Close_1001_at_once(bool unreadBytes)
    {
        await using var backend = await EchoBackendProcess.StartAsync();
        await using var proxy = await FaultProxy.StartAsync(backend.BaseUri, _dir, c => c
            .Set("Reaper:Heartbeat:PingInterval", "10s").Set("Reaper:Heartbeat:PongTimeout", "10s"));
        await using var client = await RawWebSocket.ConnectAsync(proxy.WebSocketUri("/echo"));
        for (var i = 0; i < 10; i++)
        {
            await client.SendFrameAsync(RawFrame.Text, Encoding.UTF8.GetBytes($"message {i}"));
            var echo = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(10));
            Assert.Equal($"message {i}", Encoding.UTF8.GetString(echo!.Payload));
        }

        if (unreadBytes)
        {
            // Frozen first, then a message it never reads: closing a socket with unread bytes makes the
            // kernel send a RST instead of a FIN (RFC 2525 §2.17).
            Signals.Send(backend.Id, Signals.SigStop);
            await client.SendFrameAsync(RawFrame.Text, "never read"u8);
            var (unread, table) = await TcpTable.UntilAsync(
                t => t.Any(s => s.Local.Port == backend.Port && s.State == TcpState.Established && s.ReceiveQueue > 0), TimeSpan.FromSeconds(5));
            Assert.True(unread, "the message never reached the frozen backend's receive buffer: " + string.Join("; ", table.Where(s => s.Local.Port == backend.Port)));
        }

        Signals.Send(backend.Id, Signals.SigKill);
        var killed = Stopwatch.StartNew();
        var close = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(10));
        var after = killed.Elapsed;
        output.WriteLine($"backend killed ({(unreadBytes ? "RST: unread bytes" : "FIN")}): the client got {close} {close?.CloseCode} '{close?.CloseReason}' after {after.TotalMilliseconds:0} ms");

        Assert.NotNull(close);
        Assert.Equal(RawFrame.Close, close.Opcode);
        Assert.Contains(close.CloseCode, (int[])[1001, 1011]);
        Assert.True(after <= s_atOnce, $"the Close came {after.TotalMilliseconds:0} ms after the kill; bound {s_atOnce.TotalSeconds} s");
    }
}
