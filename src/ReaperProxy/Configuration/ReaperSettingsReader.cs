namespace ReaperProxy.Configuration;

/// <summary>
/// Reads and validates the <c>Reaper</c> section and the parts of YARP's <c>ReverseProxy</c> section the
/// reaper depends on. Collects every problem (never stops at the first), each naming its key path.
/// </summary>
public static class ReaperSettingsReader
{
    /// <summary>The root section of the reaper's own settings.</summary>
    public const string SectionName = "Reaper";

    private static readonly string[] s_reaperKeys = ["AdminToken", "AdminTokenFile", "AdminUrls", "ConfigFile", "Drain", "Heartbeat", "Limits", "Policies", "LogFormat", "MaxConnections", "Transport"];
    private static readonly string[] s_limitsKeys = ["RequestHeadersTimeout", "KeepAliveTimeout", "MaxRequestHeadersTotalSize", "MaxRequestHeaderCount", "MaxUpgradesInProgress"];

    // Kestrel's own keys for what Reaper:Limits sets: the proxy's setting would silently win over them.
    private static readonly string[] s_kestrelLimitKeys = ["RequestHeadersTimeout", "KeepAliveTimeout", "MaxRequestHeadersTotalSize", "MaxRequestHeaderCount"];
    private static readonly string[] s_transportKeys = ["InlineScheduling", "InlineSocketCompletions"];
    private static readonly string[] s_drainKeys = ["Period"];
    private static readonly string[] s_policyKeys = ["Mode", "Legs", "PingInterval", "PongTimeout", "CloseTimeout", "IdleTimeout"];

    /// <summary>Reads a snapshot; <paramref name="errors"/> is empty exactly when the result is usable.</summary>
    public static ReaperSettings Read(IConfiguration configuration, out IReadOnlyList<ConfigError> errors)
    {
        var problems = new List<ConfigError>();
        var reaper = configuration.GetSection(SectionName);

        foreach (var child in reaper.GetChildren())
        {
            if (!s_reaperKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                problems.Add(new(child.Path, $"unknown setting '{child.Key}' (known: {string.Join(", ", s_reaperKeys)})"));
            }
        }

        var adminUrls = reaper["AdminUrls"];
        if (adminUrls is not null)
        {
            ValidateUrls(adminUrls, $"{SectionName}:AdminUrls", problems);
        }

        var logFormat = LogFormat.Simple;
        if (reaper["LogFormat"] is { Length: > 0 } format)
        {
            logFormat = ParseEnum<LogFormat>(format, $"{SectionName}:LogFormat", problems) ?? LogFormat.Simple;
        }

        var maxConnections = ReadMaxConnections(reaper, problems);
        var drainPeriod = ReadDrainPeriod(reaper.GetSection("Drain"), problems);
        var transport = ReadTransport(reaper.GetSection("Transport"), problems);
        var limits = ReadLimits(reaper.GetSection("Limits"), configuration.GetSection("Kestrel:Limits"), problems);
        var (adminToken, adminTokenFile) = ReadAdminToken(reaper, problems);
        var defaultPolicy = ReadPolicy(reaper.GetSection("Heartbeat"), HeartbeatPolicy.Default, name: null, problems);

        var policies = new Dictionary<string, HeartbeatPolicy>(StringComparer.OrdinalIgnoreCase);
        foreach (var section in reaper.GetSection("Policies").GetChildren())
        {
            policies[section.Key] = ReadPolicy(section, defaultPolicy, section.Key, problems);
        }

        var routeMaxConnections = new Dictionary<string, int?>(StringComparer.OrdinalIgnoreCase);
        var routePolicies = ValidateProxySection(configuration.GetSection("ReverseProxy"), policies, routeMaxConnections, problems);

        errors = problems;
        return new ReaperSettings(
            string.IsNullOrWhiteSpace(adminUrls) ? ReaperSettings.DefaultAdminUrls : adminUrls,
            defaultPolicy,
            policies,
            routePolicies,
            logFormat,
            maxConnections,
            drainPeriod)
        {
            Transport = transport,
            Limits = limits,
            AdminToken = adminToken,
            AdminTokenFile = adminTokenFile,
            RouteMaxConnections = routeMaxConnections,
        };
    }

    /// <summary>A positive whole number (no sign, no separators), as the count settings take.</summary>
    public static bool TryParseCount(string? text, out int value) =>
        int.TryParse(text?.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out value) && value > 0;

    private static LimitsSettings ReadLimits(IConfigurationSection section, IConfigurationSection kestrelLimits, List<ConfigError> problems)
    {
        foreach (var child in section.GetChildren())
        {
            if (!s_limitsKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                problems.Add(new(child.Path, $"unknown setting '{child.Key}' (known: {string.Join(", ", s_limitsKeys)})"));
            }
        }

        foreach (var key in s_kestrelLimitKeys)
        {
            if (kestrelLimits[key] is not null)
            {
                problems.Add(new($"{kestrelLimits.Path}:{key}", $"set {section.Path}:{key} instead: ReaperProxy sets this Kestrel limit from there (default {Describe(key)})"));
            }
        }

        var defaults = LimitsSettings.Default;
        return new LimitsSettings(
            ReadDuration(section, "RequestHeadersTimeout", defaults.RequestHeadersTimeout, problems),
            ReadDuration(section, "KeepAliveTimeout", defaults.KeepAliveTimeout, problems),
            ReadCount(section, "MaxRequestHeadersTotalSize", defaults.MaxRequestHeadersTotalSize, "bytes", problems),
            ReadCount(section, "MaxRequestHeaderCount", defaults.MaxRequestHeaderCount, "headers", problems),
            ReadCount(section, "MaxUpgradesInProgress", defaults.MaxUpgradesInProgress, "WebSocket requests", problems));

        static string Describe(string key) => key switch
        {
            "RequestHeadersTimeout" => Duration.Format(LimitsSettings.Default.RequestHeadersTimeout),
            "KeepAliveTimeout" => Duration.Format(LimitsSettings.Default.KeepAliveTimeout),
            "MaxRequestHeadersTotalSize" => LimitsSettings.Default.MaxRequestHeadersTotalSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => LimitsSettings.Default.MaxRequestHeaderCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    private static int ReadCount(IConfigurationSection section, string key, int fallback, string unit, List<ConfigError> problems)
    {
        var text = section[key];
        if (text is null)
        {
            return fallback;
        }

        if (TryParseCount(text, out var value))
        {
            return value;
        }

        problems.Add(new($"{section.Path}:{key}", $"'{text}' is not a positive whole number of {unit}"));
        return fallback;
    }

    // Reaper:AdminToken or Reaper:AdminTokenFile (one of them): a bearer token for the admin listener.
    private static (string? Token, string? File) ReadAdminToken(IConfigurationSection reaper, List<ConfigError> problems)
    {
        var token = reaper["AdminToken"];
        var file = reaper["AdminTokenFile"];
        token = string.IsNullOrEmpty(token) ? null : token;
        file = string.IsNullOrWhiteSpace(file) ? null : file.Trim();
        if (token is not null && file is not null)
        {
            problems.Add(new($"{SectionName}:AdminTokenFile", "set AdminToken or AdminTokenFile, not both"));
            return (null, null);
        }

        if (token is not null)
        {
            if (ValidateAdminToken(token) is { } error)
            {
                problems.Add(new($"{SectionName}:AdminToken", error));
                return (null, null);
            }

            return (token, null);
        }

        if (file is not null)
        {
            string text;
            try
            {
                text = System.IO.File.ReadAllText(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                problems.Add(new($"{SectionName}:AdminTokenFile", $"cannot read '{file}': {ex.Message}"));
                return (null, null);
            }

            if (ValidateAdminToken(text.Trim()) is { } error)
            {
                problems.Add(new($"{SectionName}:AdminTokenFile", $"'{file}': {error}"));
                return (null, null);
            }
        }

        return (null, file);
    }

    /// <summary>Why a token (already trimmed, for a file) is unusable, or null.</summary>
    public static string? ValidateAdminToken(string token)
    {
        if (token.Length < ReaperSettings.MinAdminTokenLength)
        {
            return $"the token has {token.Length} characters; use at least {ReaperSettings.MinAdminTokenLength} (e.g. `openssl rand -hex 32`)";
        }

        foreach (var c in token)
        {
            if (c <= ' ' || c > '~')
            {
                return "the token must be printable ASCII without spaces (it is sent in an Authorization header)";
            }
        }

        return null;
    }

    private static TransportSettings ReadTransport(IConfigurationSection section, List<ConfigError> problems)
    {
        foreach (var child in section.GetChildren())
        {
            if (!s_transportKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                problems.Add(new(child.Path, $"unknown setting '{child.Key}' (known: {string.Join(", ", s_transportKeys)})"));
            }
        }

        var defaults = TransportSettings.Default;
        return new TransportSettings(
            ReadBool(section, "InlineScheduling", defaults.InlineScheduling, problems),
            ReadBool(section, "InlineSocketCompletions", defaults.InlineSocketCompletions, problems));
    }

    private static bool ReadBool(IConfigurationSection section, string key, bool fallback, List<ConfigError> problems)
    {
        var text = section[key]?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }

        if (bool.TryParse(text, out var value))
        {
            return value;
        }

        problems.Add(new($"{section.Path}:{key}", $"'{text}' is not true or false"));
        return fallback;
    }

    // A duration, where (unlike the policy durations) zero is meaningful: close everything at once.
    private static TimeSpan ReadDrainPeriod(IConfigurationSection drain, List<ConfigError> problems)
    {
        foreach (var child in drain.GetChildren())
        {
            if (!s_drainKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                problems.Add(new(child.Path, $"unknown setting '{child.Key}' (known: {string.Join(", ", s_drainKeys)})"));
            }
        }

        var text = drain["Period"]?.Trim();
        if (text is null)
        {
            return ReaperSettings.DefaultDrainPeriod;
        }

        if (text is "0" or "0s" or "0ms" || (text.Contains(':') && TimeSpan.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var zero) && zero == TimeSpan.Zero))
        {
            return TimeSpan.Zero;
        }

        if (!Duration.TryParse(text, out var period, out var error))
        {
            problems.Add(new($"{drain.Path}:Period", error + " (or 0 to close every WebSocket at once)"));
            return ReaperSettings.DefaultDrainPeriod;
        }

        if (period > ReaperSettings.MaxDrainPeriod)
        {
            problems.Add(new($"{drain.Path}:Period", $"'{text}' is longer than the maximum of {Duration.Format(ReaperSettings.MaxDrainPeriod)}"));
            return ReaperSettings.DefaultDrainPeriod;
        }

        return period;
    }

    // A positive integer, or null / "auto" for the cap derived from the open-file limit.
    private static int? ReadMaxConnections(IConfigurationSection reaper, List<ConfigError> problems)
    {
        var text = reaper["MaxConnections"]?.Trim();
        if (string.IsNullOrEmpty(text) || text.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var max) && max > 0)
        {
            return max;
        }

        problems.Add(new($"{SectionName}:MaxConnections",
            $"'{text}' is not a positive whole number of WebSockets (or null/\"auto\" for a cap derived from the open-file limit)"));
        return null;
    }

    private static HeartbeatPolicy ReadPolicy(IConfigurationSection section, HeartbeatPolicy parent, string? name, List<ConfigError> problems)
    {
        foreach (var child in section.GetChildren())
        {
            if (!s_policyKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                problems.Add(new(child.Path, $"unknown setting '{child.Key}' (known: {string.Join(", ", s_policyKeys)})"));
            }
        }

        var policy = parent with { Name = name };
        if (section["Mode"] is { } mode)
        {
            policy = policy with { Mode = ParseEnum<HeartbeatMode>(mode, $"{section.Path}:Mode", problems) ?? policy.Mode };
        }

        if (section["Legs"] is { } legs)
        {
            policy = policy with { Legs = ParseEnum<HeartbeatLegs>(legs, $"{section.Path}:Legs", problems) ?? policy.Legs };
        }

        policy = policy with
        {
            PingInterval = ReadDuration(section, "PingInterval", policy.PingInterval, problems),
            PongTimeout = ReadDuration(section, "PongTimeout", policy.PongTimeout, problems),
            CloseTimeout = ReadDuration(section, "CloseTimeout", policy.CloseTimeout, problems),
        };

        // A JSON null leaves the key with a null value, which Exists() does not see; it still means "off"
        // (and must override an IdleTimeout inherited from Reaper:Heartbeat), so look for the key itself.
        var idle = section.GetSection("IdleTimeout");
        if (idle.Exists() || section.GetChildren().Any(c => string.Equals(c.Key, "IdleTimeout", StringComparison.OrdinalIgnoreCase)))
        {
            var text = idle.Value?.Trim();
            if (string.IsNullOrEmpty(text) || text.Equals("off", StringComparison.OrdinalIgnoreCase) ||
                text.Equals("null", StringComparison.OrdinalIgnoreCase) || text.Equals("none", StringComparison.OrdinalIgnoreCase))
            {
                policy = policy with { IdleTimeout = null };
            }
            else if (Duration.TryParse(text, out var value, out var error))
            {
                policy = policy with { IdleTimeout = value };
            }
            else
            {
                problems.Add(new(idle.Path, error + " (or null/\"off\" for no idle timeout)"));
            }
        }

        return policy;
    }

    private static TimeSpan ReadDuration(IConfigurationSection section, string key, TimeSpan inherited, List<ConfigError> problems)
    {
        var value = section[key];
        if (value is null)
        {
            return inherited;
        }

        if (Duration.TryParse(value, out var parsed, out var error))
        {
            return parsed;
        }

        problems.Add(new($"{section.Path}:{key}", error!));
        return inherited;
    }

    private static T? ParseEnum<T>(string text, string path, List<ConfigError> problems)
        where T : struct, Enum
    {
        var trimmed = text.Trim();
        if (trimmed.Length > 0 && !char.IsDigit(trimmed[0]) && trimmed[0] != '-' &&
            Enum.TryParse<T>(trimmed, ignoreCase: true, out var value) && Enum.IsDefined(value))
        {
            return value;
        }

        problems.Add(new(path, $"'{text}' is not one of {string.Join(", ", Enum.GetNames<T>())}"));
        return null;
    }

    private static void ValidateUrls(string urls, string path, List<ConfigError> problems)
    {
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // Kestrel accepts wildcard hosts (http://*:9464, http://+:9464) that Uri does not.
            var probe = url.Replace("://*", "://wildcard", StringComparison.Ordinal).Replace("://+", "://wildcard", StringComparison.Ordinal);
            if (!Uri.TryCreate(probe, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                problems.Add(new(path, $"'{url}' is not an http:// or https:// URL (e.g. 'http://127.0.0.1:9464')"));
            }
        }
    }

    private static Dictionary<string, string?> ValidateProxySection(
        IConfigurationSection proxy,
        Dictionary<string, HeartbeatPolicy> policies,
        Dictionary<string, int?> routeMaxConnections,
        List<ConfigError> problems)
    {
        var clusters = proxy.GetSection("Clusters").GetChildren().ToList();
        var clusterIds = new HashSet<string>(clusters.Select(c => c.Key), StringComparer.OrdinalIgnoreCase);
        var routePolicies = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);

        foreach (var route in proxy.GetSection("Routes").GetChildren())
        {
            var clusterId = route["ClusterId"];
            if (string.IsNullOrWhiteSpace(clusterId))
            {
                problems.Add(new($"{route.Path}:ClusterId", "route has no cluster; set ClusterId to one of the clusters under ReverseProxy:Clusters" + Known(clusterIds)));
            }
            else if (!clusterIds.Contains(clusterId))
            {
                problems.Add(new($"{route.Path}:ClusterId", $"unknown cluster '{clusterId}'" + Known(clusterIds)));
            }

            var match = route.GetSection("Match");
            if (!match.Exists())
            {
                problems.Add(new($"{route.Path}:Match", "route has no Match; set Match:Path (e.g. \"/chat/{**rest}\") or Match:Hosts"));
            }

            var policyName = route[$"Metadata:{ReaperSettings.PolicyMetadataKey}"];
            if (policyName is not null && !policies.ContainsKey(policyName))
            {
                problems.Add(new($"{route.Path}:Metadata:{ReaperSettings.PolicyMetadataKey}",
                    $"unknown policy '{policyName}'" + (policies.Count == 0
                        ? "; no policies are defined under Reaper:Policies"
                        : $" (defined under Reaper:Policies: {string.Join(", ", policies.Keys.Order(StringComparer.Ordinal))})")));
            }

            routePolicies[route.Key] = string.IsNullOrEmpty(policyName) ? null : policyName;

            var maxText = route[$"Metadata:{ReaperSettings.MaxConnectionsMetadataKey}"];
            int? routeMax = null;
            if (!string.IsNullOrEmpty(maxText))
            {
                if (TryParseCount(maxText, out var max))
                {
                    routeMax = max;
                }
                else
                {
                    problems.Add(new($"{route.Path}:Metadata:{ReaperSettings.MaxConnectionsMetadataKey}",
                        $"'{maxText}' is not a positive whole number of WebSockets (leave it out for no cap beyond Reaper:MaxConnections)"));
                }
            }

            routeMaxConnections[route.Key] = routeMax;
        }

        foreach (var cluster in clusters)
        {
            foreach (var destination in cluster.GetSection("Destinations").GetChildren())
            {
                var address = destination["Address"];
                if (string.IsNullOrWhiteSpace(address))
                {
                    problems.Add(new($"{destination.Path}:Address", "destination has no Address (e.g. \"http://127.0.0.1:5001/\")"));
                }
                else if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                {
                    problems.Add(new($"{destination.Path}:Address", $"'{address}' is not an absolute http:// or https:// URL"));
                }
            }
        }

        return routePolicies;

        static string Known(HashSet<string> ids) =>
            ids.Count == 0 ? " (none are defined)" : $" (defined: {string.Join(", ", ids.Order(StringComparer.Ordinal))})";
    }
}
