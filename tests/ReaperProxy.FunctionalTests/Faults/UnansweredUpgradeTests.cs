using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// A backend that accepts the TCP connection and never answers the upgrade request (a hung process, a
/// full accept queue behind a load balancer). YARP's per-cluster <c>HttpRequest.ActivityTimeout</c> bounds
/// the wait for the upgrade response: the client gets 504 when it expires, and neither the connection
/// toward the backend nor the one from the client stays open in the proxy.
/// </summary>
public sealed class UnansweredUpgradeTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-faults-");

    public void Dispose() => _dir.Delete(recursive: true);

    [SkippableFact]
    public async Task An_upgrade_the_backend_never_answers_gets_504_at_the_clusters_ActivityTimeout_and_leaves_no_socket_open()
    {
        Skip.IfNot(TcpTable.Supported, "reads /proc (Linux)");
        var activityTimeout = TimeSpan.FromSeconds(2);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var backendPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        await using var proxy = await FaultProxy.StartAsync(new Uri($"http://127.0.0.1:{backendPort}/"), _dir, c => c
            .Set("ReverseProxy:Clusters:backend:HttpRequest:ActivityTimeout", "00:00:02"));

        // The backend: takes the connection, reads the request, answers nothing; notes when the proxy ends it.
        var backendSawEnd = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = new Stopwatch();
        var backend = Task.Run(async () =>
        {
            using var accepted = await listener.AcceptSocketAsync(Eventually.Within(TimeSpan.FromSeconds(30)));
            var buffer = new byte[16 * 1024];
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (await accepted.ReceiveAsync(buffer, SocketFlags.None, bound.Token) > 0)
            {
            }

            backendSawEnd.TrySetResult(clock.Elapsed);
        });

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(IPAddress.Loopback, proxy.PublicUri.Port);
        var clientPort = ((IPEndPoint)client.LocalEndPoint!).Port;
        clock.Start();
        await client.SendAsync(Encoding.ASCII.GetBytes(
            $"GET /chat HTTP/1.1\r\nHost: {proxy.PublicUri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"), SocketFlags.None);
        var responding = ReadHeadAsync(client, TimeSpan.FromSeconds(30));

        // While the upgrade waits, the proxy's process is seen holding its socket toward the backend (so
        // the check at the end can see such sockets at all).
        var seen = false;
        await TcpTable.UntilAsync(
            _ => (seen = HeldToward(proxy.Id, backendPort, clientPort).Any(s => s.Remote.Port == backendPort)) || responding.IsCompleted,
            TimeSpan.FromSeconds(30));
        Assert.True(seen, "the proxy's socket toward the backend was never seen in its /proc/PID/fd");
        var response = await responding;
        var answeredAfter = clock.Elapsed;
        var statusLine = response.Split("\r\n")[0];
        output.WriteLine($"'{statusLine}' after {answeredAfter.TotalSeconds:0.00} s (ActivityTimeout {activityTimeout.TotalSeconds} s)");

        Assert.Matches("^HTTP/1.1 50[24] ", statusLine);
        Assert.True(answeredAfter >= activityTimeout - TimeSpan.FromMilliseconds(100), $"answered after {answeredAfter.TotalSeconds:0.00} s, before the ActivityTimeout");
        // Far below YARP's default of 100 s: the configured timeout is what ended the wait. (The slack is wide:
        // under a loaded CI machine the proxy process itself answered 1.9 s late.)
        Assert.True(answeredAfter <= activityTimeout + 2 * FaultProxy.Slack, $"answered after {answeredAfter.TotalSeconds:0.00} s; ActivityTimeout {activityTimeout.TotalSeconds} s");

        // The proxy ended its connection toward the backend.
        var backendEnd = await backendSawEnd.Task.WaitAsync(TimeSpan.FromSeconds(5));
        output.WriteLine($"the backend saw its connection end {backendEnd.TotalSeconds:0.00} s after the request");
        await backend;

        // The client leaves; then the proxy process holds no socket toward either peer (its /proc/PID/fd).
        client.Close();
        var (clean, _) = await TcpTable.UntilAsync(_ => !HeldToward(proxy.Id, backendPort, clientPort).Any(), TimeSpan.FromSeconds(5));
        var held = HeldToward(proxy.Id, backendPort, clientPort);
        foreach (var socket in held)
        {
            output.WriteLine("still held: " + socket);
        }

        Assert.True(clean, "the proxy still holds: " + string.Join("; ", held));
    }

    private static IReadOnlyList<TcpSocket> HeldToward(int pid, int backendPort, int clientPort) =>
        [.. TcpTable.HeldBy(pid).Where(s => s.Remote.Port == backendPort || s.Remote.Port == clientPort)];

    private static async Task<string> ReadHeadAsync(Socket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[16 * 1024];
        var filled = 0;
        while (buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8) < 0)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cts.Token);
            if (n == 0)
            {
                break;
            }

            filled += n;
        }

        return Encoding.ASCII.GetString(buffer, 0, filled);
    }
}
