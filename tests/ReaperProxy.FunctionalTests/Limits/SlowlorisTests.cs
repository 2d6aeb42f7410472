using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Limits;

/// <summary>
/// Slowloris on the upgrade: thousands of clients send their upgrade request's headers a byte a second.
/// Reaper:Limits:RequestHeadersTimeout cuts every one of them (408 and the connection closed) and none
/// reaches a backend, while a real client connects and echoes through the same process meanwhile.
/// </summary>
public sealed class SlowlorisTests(ITestOutputHelper output) : IDisposable
{
    private const int SlowClients = 2000;
    private static readonly TimeSpan s_headersTimeout = TimeSpan.FromSeconds(2);

    // Kestrel's heartbeat checks timeouts once a second and adds one interval to each, so a cut comes between
    // the timeout + 1 s and + 2 s; the rest is for a loaded 2-core machine.
    private static readonly TimeSpan s_cutBound = s_headersTimeout + TimeSpan.FromSeconds(2) + TimeSpan.FromSeconds(4);

    private static readonly byte[] s_request = Encoding.ASCII.GetBytes(
        "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-slowloris-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Two_thousand_clients_sending_headers_a_byte_a_second_are_cut_by_the_headers_timeout_while_a_real_client_echoes()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var file = Path.Combine(_dir.FullName, "reaper.json");
        File.WriteAllText(file, ProxyConfig.CatchAll(backend.BaseUri)
            .Set("Reaper:Limits:RequestHeadersTimeout", $"{s_headersTimeout.TotalSeconds}s").WithTestDefaults().ToJson());
        await using var process = await ProxyProcess.StartAsync(file);
        var echoUri = new Uri($"ws://{process.PublicUri.Authority}/echo");

        // Once before the attack, so the figure below is what the attack costs, not the process's first WebSocket.
        var baselineClock = Stopwatch.StartNew();
        await using (var warm = await TestWebSocket.ConnectHttp1Async(echoUri))
        {
            Assert.Equal("warm", await warm.EchoAsync("warm"));
        }

        var baseline = baselineClock.Elapsed;
        var clock = Stopwatch.StartNew();
        var slow = new SlowClient[SlowClients];
        using (var gate = new SemaphoreSlim(100))
        {
            await Task.WhenAll(Enumerable.Range(0, SlowClients).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    slow[i] = await SlowClient.StartAsync(process.PublicUri, clock);
                }
                finally
                {
                    gate.Release();
                }
            })).WaitAsync(TimeSpan.FromSeconds(60));
        }

        var connected = clock.Elapsed;

        // One byte a second to every client still open, until all are cut (bounded).
        using var stopTrickle = new CancellationTokenSource();
        var trickle = Task.Run(async () =>
        {
            using var tick = new PeriodicTimer(TimeSpan.FromSeconds(1));
            for (var second = 0; second < 30 && await tick.WaitForNextTickAsync(stopTrickle.Token); second++)
            {
                await Task.WhenAll(slow.Where(c => !c.Ended.IsCompleted).Select(c => c.SendNextByteAsync()));
            }
        });

        // Meanwhile a real client connects and echoes.
        var echoClock = Stopwatch.StartNew();
        await using (var real = await TestWebSocket.ConnectHttp1Async(echoUri))
        {
            Assert.Equal("still served", await real.EchoAsync("still served"));
        }

        var echo = echoClock.Elapsed;

        await Task.WhenAll(slow.Select(c => c.Ended)).WaitAsync(s_cutBound + TimeSpan.FromSeconds(10));
        await stopTrickle.CancelAsync();
        await trickle.ContinueWith(_ => { }, TaskScheduler.Default);

        var lifetimes = slow.Select(c => c.Lifetime).Order().ToList();
        output.WriteLine($"{SlowClients} slow clients connected in {connected.TotalSeconds:0.0} s; a real client connected and echoed in {echo.TotalMilliseconds:0} ms meanwhile (before them: {baseline.TotalMilliseconds:0} ms, the process's first WebSocket)");
        output.WriteLine($"cut after (from each one's first byte): min {lifetimes[0].TotalSeconds:0.00} s, median {lifetimes[SlowClients / 2].TotalSeconds:0.00} s, " +
            $"max {lifetimes[^1].TotalSeconds:0.00} s; RequestHeadersTimeout {s_headersTimeout.TotalSeconds} s; answers: " +
            string.Join(", ", slow.GroupBy(c => c.StatusLine).Select(g => $"{g.Count()} × '{g.Key}'")));

        Assert.True(echo < TimeSpan.FromSeconds(5), $"the real client took {echo.TotalSeconds:0.0} s");
        Assert.All(slow, c => Assert.Equal("HTTP/1.1 408 Request Timeout", c.StatusLine));
        Assert.True(lifetimes[0] >= s_headersTimeout - TimeSpan.FromMilliseconds(100), $"a slow client was cut after {lifetimes[0].TotalSeconds:0.00} s, before the timeout");
        Assert.True(lifetimes[^1] <= s_cutBound, $"a slow client was cut only after {lifetimes[^1].TotalSeconds:0.00} s");

        // None of them reached the backend: only the real client's two upgrades did.
        Assert.Equal(2, backend.RequestsFor("/echo").Count);
        foreach (var c in slow)
        {
            c.Dispose();
        }
    }

    // A client that sends its upgrade request one byte at a time and records how and when the proxy ended it.
    private sealed class SlowClient : IDisposable
    {
        private readonly Socket _socket;
        private readonly Stopwatch _clock;
        private int _sent;
        private TimeSpan _firstByte;
        private TimeSpan _end;

        private SlowClient(Socket socket, Stopwatch clock)
        {
            _socket = socket;
            _clock = clock;
        }

        public Task Ended { get; private set; } = Task.CompletedTask;

        public string StatusLine { get; private set; } = "(nothing)";

        public TimeSpan Lifetime => _end - _firstByte;

        public static async Task<SlowClient> StartAsync(Uri proxy, Stopwatch clock)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(proxy.Host, proxy.Port, Eventually.Within());
            var client = new SlowClient(socket, clock);
            await client.SendNextByteAsync();
            client._firstByte = clock.Elapsed;
            client.Ended = client.ReadUntilClosedAsync();
            return client;
        }

        public async Task SendNextByteAsync()
        {
            if (_sent >= s_request.Length - 1)
            {
                // Never the last byte: the headers must stay incomplete.
                return;
            }

            try
            {
                await _socket.SendAsync(s_request.AsMemory(_sent, 1), SocketFlags.None);
                _sent++;
            }
            catch (SocketException)
            {
                // Cut meanwhile; ReadUntilClosedAsync records it.
            }
        }

        public void Dispose() => _socket.Dispose();

        private async Task ReadUntilClosedAsync()
        {
            var answer = new MemoryStream();
            var buffer = new byte[1024];
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                int read;
                while ((read = await _socket.ReceiveAsync(buffer, SocketFlags.None, bound.Token)) > 0)
                {
                    answer.Write(buffer, 0, read);
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                // A reset ends it too; the status line says what came before.
            }

            _end = _clock.Elapsed;
            var text = Encoding.ASCII.GetString(answer.ToArray());
            var eol = text.IndexOf('\r', StringComparison.Ordinal);
            StatusLine = eol > 0 ? text[..eol] : text.Length > 0 ? text : "(closed without an answer)";
        }
    }
}
