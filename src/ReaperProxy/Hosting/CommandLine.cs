namespace ReaperProxy.Hosting;

/// <summary>
/// The command line, a stable contract: <c>[--config FILE] [--urls URLS] [--admin-urls URLS]</c> or
/// <c>--check-config FILE</c>. Each value also has a configuration key (see README).
/// </summary>
public sealed record CommandLine
{
    /// <summary>The usage text printed by <c>--help</c> and on a usage error.</summary>
    public const string Usage = """
        Usage: ReaperProxy [--config FILE] [--urls URLS] [--admin-urls URLS]
               ReaperProxy --check-config FILE

          --config FILE        JSON configuration loaded over the built-in defaults and watched for
                               changes (also: Reaper__ConfigFile).
          --urls URLS          public listener(s), ';'-separated (default http://127.0.0.1:8080;
                               also: ASPNETCORE_URLS / urls).
          --admin-urls URLS    admin listener(s) for /healthz /readyz /metrics /connections
                               (default http://127.0.0.1:9464; also: Reaper__AdminUrls).
          --check-config FILE  validate FILE, print each route's effective heartbeat policy, exit
                               0 when valid and 1 when not.
          -h, --help           show this text.
        """;

    /// <summary>The <c>--config</c> file, if given.</summary>
    public string? ConfigFile { get; init; }

    /// <summary>The <c>--urls</c> value, if given.</summary>
    public string? Urls { get; init; }

    /// <summary>The <c>--admin-urls</c> value, if given.</summary>
    public string? AdminUrls { get; init; }

    /// <summary>The <c>--check-config</c> file, if given.</summary>
    public string? CheckConfigFile { get; init; }

    /// <summary>Whether help was asked for.</summary>
    public bool Help { get; init; }

    /// <summary>Parses the arguments; on failure returns null and a message for the user.</summary>
    public static CommandLine? Parse(IReadOnlyList<string> args, out string? error)
    {
        error = null;
        var result = new CommandLine();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string name = arg;
            string? inlineValue = null;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                inlineValue = arg[(eq + 1)..];
            }

            switch (name)
            {
                case "-h" or "--help" or "-?":
                    result = result with { Help = true };
                    continue;
                case "--config":
                case "--urls":
                case "--admin-urls":
                case "--check-config":
                    var value = inlineValue;
                    if (value is null)
                    {
                        if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                        {
                            error = $"option {name} needs a value";
                            return null;
                        }

                        value = args[++i];
                    }

                    if (string.IsNullOrWhiteSpace(value))
                    {
                        error = $"option {name} needs a non-empty value";
                        return null;
                    }

                    result = name switch
                    {
                        "--config" => result with { ConfigFile = value },
                        "--urls" => result with { Urls = value },
                        "--admin-urls" => result with { AdminUrls = value },
                        _ => result with { CheckConfigFile = value },
                    };
                    continue;
                default:
                    error = $"unknown argument '{arg}'";
                    return null;
            }
        }

        if (result.CheckConfigFile is not null && result.ConfigFile is not null &&
            !string.Equals(result.CheckConfigFile, result.ConfigFile, StringComparison.Ordinal))
        {
            error = "--check-config validates one file; do not combine it with a different --config";
            return null;
        }

        return result;
    }
}
