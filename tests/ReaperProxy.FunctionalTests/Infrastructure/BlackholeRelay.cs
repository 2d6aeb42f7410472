using System.Net;
using System.Net.Sockets;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>
/// A TCP relay between a client and a server on loopback that can be told to stop forwarding in both
/// directions without closing anything: the Wi-Fi walk-out, a NAT that silently dropped the flow. No
/// FIN, no RST; both sockets stay ESTABLISHED and bytes simply stop arriving.
/// </summary>
public sealed class BlackholeRelay : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly Task _accept;
    private volatile bool _blackholed;

    public BlackholeRelay(IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accept = AcceptLoopAsync();
    }

    /// <summary>Where clients connect instead of the target.</summary>
    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>From now on no byte crosses, either way; connections stay open.</summary>
    public void Blackhole() => _blackholed = true;

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_sockets)
        {
            foreach (var s in _sockets)
            {
                s.Dispose();
            }
        }

        try
        {
            await _accept;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptSocketAsync(_stop.Token);
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await server.ConnectAsync(_target, _stop.Token);
            lock (_sockets)
            {
                _sockets.Add(client);
                _sockets.Add(server);
            }

            _ = PumpAsync(client, server);
            _ = PumpAsync(server, client);
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                if (_blackholed)
                {
                    // Swallow: the bytes vanish in the network.
                    continue;
                }

                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }
}
