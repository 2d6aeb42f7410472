using System.CommandLine;
using ReaperProxy.Probe.Checks;
using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Cli;

/// <summary>
/// The command line (System.CommandLine): the options, their help, and their translation into
/// <see cref="ProbeSettings"/>, with every bad value reported at once.
/// </summary>
internal sealed class ProbeCommand
{
    private static readonly ProbeSettings s_defaults = new()
    {
        Connect = new ConnectOptions(new Uri("ws://localhost/"), [], [], null, false, TimeSpan.FromSeconds(10)),
        Checks = [],
    };

    private readonly Argument<string> _url = new("URL") { Description = "The WebSocket endpoint: ws://host[:port]/path or wss://..." };
    private readonly Option<string[]> _header = new("--header", "-H") { Description = "A request header for the upgrade, 'Name: value' (repeatable), e.g. -H 'Authorization: Bearer ...'", HelpName = "'NAME: VALUE'" };
    private readonly Option<string[]> _subprotocol = new("--subprotocol") { Description = "A subprotocol to offer in Sec-WebSocket-Protocol (repeatable, in order of preference)", HelpName = "NAME" };
    private readonly Option<string> _origin = new("--origin") { Description = "The Origin header, for servers that check it", HelpName = "ORIGIN" };
    private readonly Option<bool> _insecure = new("--insecure") { Description = "wss:// only: accept any certificate (self-signed, expired, another name)" };
    private readonly Option<string[]> _check = new("--check") { Description = "Run only this check (repeatable); all by default. One of: " + string.Join(", ", CheckCatalog.Names), HelpName = "NAME" };
    private readonly Option<string[]> _limit = new("--limit") { Description = "How long a check may wait for the server after its upgrade, for every check or, as CHECK=DURATION, for one (repeatable). Default 120s", HelpName = "[CHECK=]DURATION" };
    private readonly Option<string> _maxReap = new("--max-reap") { Description = "silent-client passes when the server drops a silent client within this. Default 60s", HelpName = "DURATION" };
    private readonly Option<string> _maxCloseWait = new("--max-close-wait") { Description = "no-close-reply and client-close-abandoned pass when the server ends TCP within this after the Close. Default 30s", HelpName = "DURATION" };
    private readonly Option<string> _maxStall = new("--max-stall") { Description = "stalled-frame passes when the server gives up on a half-sent frame within this. Default 60s", HelpName = "DURATION" };
    private readonly Option<string> _maxRtt = new("--max-rtt") { Description = "ping-answer passes when the p99 ping round trip is within this. Default 1s", HelpName = "DURATION" };
    private readonly Option<int?> _pings = new("--pings") { Description = "How many pings ping-answer sends. Default 10", HelpName = "N" };
    private readonly Option<string> _closeTrigger = new("--close-trigger") { Description = "no-close-reply: a text message that makes your server start a closing handshake (without it, the check waits for one)", HelpName = "MESSAGE" };
    private readonly Option<string> _echo = new("--echo") { Description = "slow-reader: a text message your server echoes, sent until --read-bytes will come back (without it, the check reads what the server streams)", HelpName = "MESSAGE" };
    private readonly Option<string> _readRate = new("--read-rate") { Description = "slow-reader: how fast it reads, bytes per second (k = 1024). Default 2k", HelpName = "BYTES" };
    private readonly Option<string> _readBytes = new("--read-bytes") { Description = "slow-reader: how much it reads before it passes. Default 64k", HelpName = "BYTES" };
    private readonly Option<string> _connectTimeout = new("--connect-timeout") { Description = "For the TCP connect, TLS and the upgrade of each connection. Default 10s", HelpName = "DURATION" };
    private readonly Option<bool> _json = new("--json") { Description = "Write the report as JSON (schema reaperproxy-probe/v1, docs/probe.md) to stdout; progress and the table go to stderr" };

    public ProbeCommand()
    {
        Root = new RootCommand(
            """
            reaperproxy-probe: is this WebSocket server (or the load balancer in front of it) keeping zombies,
            hanging in closing handshakes, or cutting live idle users? Each check opens its own connection,
            speaks RFC 6455 by hand, misbehaves in one way, and gives a verdict. The checks run at once.

            Checks:
            """ + string.Concat(CheckCatalog.All.Select(c => $"\n  {c.Name,-24}{c.Description}")) + """


            Durations: 120s, 500ms, 2m, 1.5s. Exit codes: 0 every check passed, 1 a check failed, 2 usage or
            connection error (DNS, refused, TLS, an HTTP status instead of 101), 3 no failure but a check proved
            nothing (inconclusive), 130 interrupted (Ctrl-C; what was learned is still printed).
            """);
        Root.Add(_url);
        foreach (var option in new Option[]
                 {
                     _header, _subprotocol, _origin, _insecure, _check, _limit, _maxReap, _maxCloseWait, _maxStall, _maxRtt, _pings,
                     _closeTrigger, _echo, _readRate, _readBytes, _connectTimeout, _json,
                 })
        {
            Root.Add(option);
        }
    }

    public RootCommand Root { get; }

    /// <summary>Whether <c>--json</c> was given.</summary>
    public bool Json(ParseResult parse) => parse.GetValue(_json);

    /// <summary>The settings, or every problem with the values (each names its option).</summary>
    public ProbeSettings? Bind(ParseResult parse, out IReadOnlyList<string> errors)
    {
        var problems = new List<string>();
        var url = parse.GetValue(_url) ?? string.Empty;
        Uri? uri = null;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || (parsed.Scheme != "ws" && parsed.Scheme != "wss"))
        {
            problems.Add($"URL '{url}' must be an absolute ws:// or wss:// address" +
                (parsed?.Scheme is "http" or "https" ? $" (for {parsed.Scheme}://, write {(parsed.Scheme == "http" ? "ws" : "wss")}://)" : string.Empty));
        }
        else if (parsed.Host.Length == 0)
        {
            problems.Add($"URL '{url}' has no host");
        }
        else
        {
            uri = parsed;
        }

        var headers = new List<KeyValuePair<string, string>>();
        foreach (var text in parse.GetValue(_header) ?? [])
        {
            if (ValueParsers.Header(text, out var error) is { } header)
            {
                if (WebSocketConnector.ReservedHeaders.Contains(header.Key, StringComparer.OrdinalIgnoreCase))
                {
                    problems.Add($"-H: the probe writes '{header.Key}' itself" + (header.Key.Equals("Sec-WebSocket-Protocol", StringComparison.OrdinalIgnoreCase) ? " (use --subprotocol)" : string.Empty));
                }
                else
                {
                    headers.Add(header);
                }
            }
            else
            {
                problems.Add("-H: " + error);
            }
        }

        var subprotocols = (parse.GetValue(_subprotocol) ?? []).Select(s => s.Trim()).ToList();
        foreach (var bad in subprotocols.Where(s => s.Length == 0 || s.Any(c => c <= ' ' || c >= 127 || "()<>@,;:\\\"/[]?={}".Contains(c))))
        {
            problems.Add($"--subprotocol '{bad}' is not a valid token (RFC 6455 §4.1)");
        }

        var checks = new List<string>();
        foreach (var name in parse.GetValue(_check) ?? [])
        {
            if (CheckCatalog.Find(name) is { } check)
            {
                checks.Add(check.Name);
            }
            else
            {
                problems.Add($"--check '{name}' is not a check; the checks are: {string.Join(", ", CheckCatalog.Names)}");
            }
        }

        var selected = checks.Count == 0 ? CheckCatalog.Names.ToList() : CheckCatalog.Names.Where(checks.Contains).ToList();

        var defaultLimit = s_defaults.DefaultLimit;
        var limits = new Dictionary<string, TimeSpan>();
        foreach (var text in parse.GetValue(_limit) ?? [])
        {
            var equals = text.IndexOf('=');
            var name = equals < 0 ? null : text[..equals].Trim();
            var value = ValueParsers.Duration(equals < 0 ? text : text[(equals + 1)..], out var error);
            if (name is not null && CheckCatalog.Find(name) is null)
            {
                problems.Add($"--limit '{text}': '{name}' is not a check; the checks are: {string.Join(", ", CheckCatalog.Names)}");
            }
            else if (value is null)
            {
                problems.Add($"--limit: {error}");
            }
            else if (name is null)
            {
                defaultLimit = value.Value;
            }
            else
            {
                limits[CheckCatalog.Find(name)!.Name] = value.Value;
            }
        }

        TimeSpan Duration(Option<string> option, TimeSpan fallback)
        {
            if (parse.GetValue(option) is not { } text)
            {
                return fallback;
            }

            var value = ValueParsers.Duration(text, out var error);
            if (value is null)
            {
                problems.Add($"{option.Name}: {error}");
            }

            return value ?? fallback;
        }

        int Size(Option<string> option, int fallback)
        {
            if (parse.GetValue(option) is not { } text)
            {
                return fallback;
            }

            var value = ValueParsers.Size(text, out var error);
            if (value is null)
            {
                problems.Add($"{option.Name}: {error}");
            }

            return value ?? fallback;
        }

        var maxReap = Duration(_maxReap, s_defaults.MaxReap);
        var maxCloseWait = Duration(_maxCloseWait, s_defaults.MaxCloseWait);
        var maxStall = Duration(_maxStall, s_defaults.MaxStall);
        var maxRtt = Duration(_maxRtt, s_defaults.MaxRtt);
        var connectTimeout = Duration(_connectTimeout, s_defaults.Connect.Timeout);
        var readRate = Size(_readRate, s_defaults.ReadRate);
        var readBytes = Size(_readBytes, s_defaults.ReadBytes);
        var pings = parse.GetValue(_pings) ?? s_defaults.Pings;
        if (pings is < 1 or > 10_000)
        {
            problems.Add($"--pings {pings}: give 1 to 10000");
        }

        var closeTrigger = parse.GetValue(_closeTrigger);
        var echo = parse.GetValue(_echo);
        if (echo is { Length: 0 })
        {
            problems.Add("--echo: the message must not be empty");
        }

        if (parse.GetValue(_insecure) && uri?.Scheme == "ws")
        {
            problems.Add("--insecure is for wss:// (there is no certificate on ws://)");
        }

        errors = problems;
        if (problems.Count > 0 || uri is null)
        {
            return null;
        }

        return new ProbeSettings
        {
            Connect = new ConnectOptions(uri, headers, subprotocols, parse.GetValue(_origin), parse.GetValue(_insecure), connectTimeout),
            Checks = selected,
            DefaultLimit = defaultLimit,
            Limits = limits,
            MaxReap = maxReap,
            MaxCloseWait = maxCloseWait,
            MaxStall = maxStall,
            MaxRtt = maxRtt,
            Pings = pings,
            CloseTrigger = closeTrigger,
            Echo = echo,
            ReadRate = readRate,
            ReadBytes = readBytes,
        };
    }
}
